#include "data/document_encoder.h"

#include "core/error.h"

namespace l4::data {

Document insert_encoded_images(const std::vector<int32_t>& ids, const std::vector<uint8_t>& mask,
                               int32_t placeholder, std::vector<EncodedImage> images) {
  L4_ASSERT(ids.size() == mask.size(), "ids and mask differ in length");
  Document doc;
  size_t next = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != placeholder) {
      doc.tokens.push_back(static_cast<uint32_t>(ids[i]));
      doc.loss_mask.push_back(mask[i]);
      continue;
    }
    L4_CHECK(next < images.size(), "the text has more image placeholders than images");
    EncodedImage& im = images[next++];
    ImageRecord rec;
    rec.token_begin = doc.tokens.size();
    for (int32_t t : im.tokens) {
      doc.tokens.push_back(static_cast<uint32_t>(t));
      doc.loss_mask.push_back(0);
    }
    rec.token_end = doc.tokens.size();
    rec.grid_rows = im.grid_rows;
    rec.grid_cols = im.grid_cols;
    rec.tiles = std::move(im.tiles);
    doc.images.push_back(std::move(rec));
  }
  L4_CHECK(next == images.size(), "{} images but {} image placeholders in the text", images.size(), next);
  return doc;
}

}  // namespace l4::data
