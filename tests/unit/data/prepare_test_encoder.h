// A byte-level stand-in for the tokenizer in prepare tests, and small file helpers.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/document_encoder.h"
#include "data/prepare.h"

namespace l4::data::testing {

inline constexpr int32_t kBos = 256, kEos = 257, kImagePlaceholder = 258, kImageStart = 259, kPatchId = 260,
                         kImageEnd = 261, kRoleBase = 270;

// Bytes as ids; chat turns as <role> content, images as placeholders expanded to 1 tile and 4 patches.
class ByteEncoder : public DocumentEncoder {
 public:
  TokenizerInfo tokenizer_info() const override { return {"bytes", 300, 0, kPatchId}; }
  Document encode_text(std::string_view text) const override {
    Document d;
    d.tokens.push_back(kBos);
    for (unsigned char c : text) d.tokens.push_back(c);
    d.tokens.push_back(kEos);
    d.loss_mask.assign(d.tokens.size(), 1);
    return d;
  }
  Document encode_chat(const std::vector<ChatTurn>& turns) const override {
    std::vector<int32_t> ids{kBos};
    std::vector<uint8_t> mask{0};
    std::vector<EncodedImage> images;
    const std::vector<std::string> roles = {"system", "user", "assistant", "tool", "ipython"};
    for (const ChatTurn& t : turns) {
      const uint8_t target = t.role == "assistant" && t.target;
      ids.push_back(kRoleBase +
                    static_cast<int32_t>(std::find(roles.begin(), roles.end(), t.role) - roles.begin()));
      mask.push_back(0);
      for (const ChatPart& p : t.parts) {
        if (p.is_image) {
          ids.push_back(kImagePlaceholder);
          mask.push_back(0);
          EncodedImage im;
          im.tiles.assign(kTileBytes, static_cast<uint8_t>(std::filesystem::file_size(p.image_path)));
          im.tokens = {kImageStart, kPatchId, kPatchId, kPatchId, kPatchId, kImageEnd};
          images.push_back(std::move(im));
        }
        for (unsigned char c : p.text) {
          ids.push_back(c);
          mask.push_back(target);
        }
      }
    }
    return insert_encoded_images(ids, mask, kImagePlaceholder, std::move(images));
  }
};

inline std::string write_file(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const l4::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace l4::data::testing
