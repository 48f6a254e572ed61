// EXIF orientation (TIFF tag 0x0112) of JPEG (APP1 "Exif") and PNG (eXIf chunk) files, and the transform
// that puts the pixels upright, as PIL.ImageOps.exif_transpose does inside transformers' load_image().
#pragma once

#include <cstdint>
#include <string_view>

#include "vision/image_decode.h"

namespace l4::vision {

// 1 (upright) .. 8, or 1 when absent or unreadable; never reads out of bounds.
int exif_orientation(std::string_view file_bytes);

// Applies orientation 2..8 in place (width and height swap for 5..8).
void apply_exif_orientation(Image& image, int orientation);

}  // namespace l4::vision
