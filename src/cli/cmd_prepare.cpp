// llama4 prepare: JSONL/text (+images) -> HDF5 dataset shards (data/prepare.h does the work; this file
// adapts the tokenizer, the vision tiling and MPI to it).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "config/recipe.h"
#include "core/error.h"
#include "core/launch_env.h"
#include "core/log.h"
#include "core/strings.h"
#include "data/conversation_fit.h"
#include "data/input_files.h"
#include "data/prepare.h"
#include "tokenizer/tokenizer.h"
#include "vision/image_decode.h"
#include "vision/image_preprocess.h"
#include "vision/image_tokens.h"

namespace l4::cli {
namespace {

// Processes started by mpirun/srun split the input files; MPI is initialised here only if nobody did.
class MpiPrepareComm : public data::PrepareComm {
 public:
  MpiPrepareComm() {
    if (detect_launch_env().world_size <= 1) return;
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      L4_CHECK(MPI_Init(nullptr, nullptr) == MPI_SUCCESS, "prepare: MPI_Init failed");
      owns_ = true;
    }
    active_ = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiPrepareComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_ && !finalized) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void barrier() override {
    if (active_) MPI_Barrier(MPI_COMM_WORLD);
  }
  bool all_true(bool ok) override {
    if (!active_) return ok;
    int mine = ok ? 1 : 0, all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return all != 0;
  }

 private:
  bool active_ = false, owns_ = false;
  int rank_ = 0, size_ = 1;
};

// Image file -> uint8 tiles (HF Llama4ImageProcessor tiling) and the tokens standing for it.
data::ImageEncoder make_image_encoder(const tokenizer::Tokenizer& tok, const config::VisionConfig& vision) {
  L4_CHECK(vision.image_size == data::kTileSize,
           "vision_config.image_size is {}, but prepared datasets store {}x{} tiles", vision.image_size,
           data::kTileSize, data::kTileSize);
  const vision::ImageTokenIds ids =
      vision::ImageTokenIds::from_lookup([&](const std::string& name) -> int64_t {
        const auto id = tok.special_id(name);
        return id ? *id : -1;
      });
  const vision::PreprocessOptions preprocess = vision::PreprocessOptions::from_config(vision);
  const int64_t patches = vision::patches_per_tile(vision);
  const std::string tok_path = tok.path();
  return [ids, preprocess, patches, tok_path](const std::string& path) {
    L4_CHECK(ids.complete(), "{}: the tokenizer lacks the Llama 4 image tokens", tok_path);
    const vision::ImageTiles tiles = vision::tile_image(vision::load_image(path), preprocess);
    data::EncodedImage out;
    out.grid_rows = static_cast<uint64_t>(tiles.grid.rows);
    out.grid_cols = static_cast<uint64_t>(tiles.grid.cols);
    const at::Tensor t = tiles.tiles.contiguous();
    const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
    out.tiles.assign(bytes, bytes + t.numel());
    for (int64_t id : vision::image_token_layout(tiles.grid, patches, ids))
      out.tokens.push_back(static_cast<int32_t>(id));
    return out;
  };
}

// The template's assistant mask has one run of ones per assistant turn (the header between two turns is never
// a target); clears the runs of the turns that are not targets (data.train_on: last_turn).
void untarget_turns(std::vector<uint8_t>& mask, const std::vector<bool>& targets) {
  size_t run = 0;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (!mask[i]) continue;
    const bool keep = run < targets.size() && targets[run];
    for (; i < mask.size() && mask[i]; ++i) mask[i] = keep;
    ++run;
  }
  L4_ASSERT(run == targets.size(), "{} assistant turns but {} target runs in the chat mask", targets.size(),
            run);
}

// Tokenizer (+ image encoder) -> documents. Pretraining text: <|begin_of_text|> text <|end_of_text|>,
// all tokens targets. Chat: the Llama 4 chat template with <|image|> where each image part is, then
// every <|image|> expanded into the image's tile tokens; targets = assistant content and its <|eot|>.
class TokenizerEncoder : public data::DocumentEncoder {
 public:
  TokenizerEncoder(std::unique_ptr<tokenizer::Tokenizer> tok, const config::VisionConfig& vision)
      : tok_(std::move(tok)), images_(make_image_encoder(*tok_, vision)) {
    const auto special = [&](const char* name) -> int32_t {
      const auto id = tok_->special_id(name);
      return id ? *id : -1;
    };
    image_placeholder_ = special("<|image|>");
    info_.sha256 = tok_->sha256();
    info_.vocab_size = tok_->vocab_size();
    info_.pad_id = tok_->pad_id() >= 0 ? tok_->pad_id() : tok_->eos_id();
    info_.patch_id = special("<|patch|>");
  }

  data::TokenizerInfo tokenizer_info() const override { return info_; }

  data::Document encode_text(std::string_view text) const override {
    data::Document doc;
    std::vector<int32_t> ids = tok_->encode(text, /*add_bos=*/true, /*parse_special=*/false);
    L4_CHECK(tok_->eos_id() >= 0, "{}: the tokenizer has no <|end_of_text|>", tok_->path());
    ids.push_back(tok_->eos_id());
    doc.tokens.assign(ids.begin(), ids.end());
    doc.loss_mask.assign(ids.size(), 1);
    return doc;
  }

  data::Document encode_chat(const std::vector<data::ChatTurn>& turns) const override {
    std::vector<tokenizer::ChatMessage> messages;
    std::vector<bool> assistant_targets;  // per assistant turn, in order
    std::vector<std::string> images;
    for (const data::ChatTurn& turn : turns) {
      tokenizer::ChatMessage m;
      m.role = turn.role;
      if (turn.role == "assistant") assistant_targets.push_back(turn.target);
      for (const data::ChatPart& part : turn.parts) {
        if (part.is_image) {
          m.content += "<|image|>";
          images.push_back(part.image_path);
        } else {
          L4_CHECK(part.text.find("<|image|>") == std::string::npos,
                   "message text contains '<|image|>'; use an image part instead");
          m.content += part.text;
        }
      }
      messages.push_back(std::move(m));
    }
    L4_CHECK(images.empty() || image_placeholder_ >= 0, "{}: the tokenizer has no <|image|> token",
             tok_->path());
    tokenizer::EncodedChat chat = tokenizer::encode_chat(*tok_, messages, false);
    untarget_turns(chat.assistant_mask, assistant_targets);
    std::vector<data::EncodedImage> encoded;
    for (const std::string& path : images) encoded.push_back(images_(path));
    return data::insert_encoded_images(chat.ids, chat.assistant_mask, image_placeholder_, std::move(encoded));
  }

 private:
  std::unique_ptr<tokenizer::Tokenizer> tok_;
  data::ImageEncoder images_;
  int32_t image_placeholder_ = -1;
  data::TokenizerInfo info_;
};

// Llama 4's vision defaults (336-pixel tiles of 14-pixel patches, pixel shuffle 0.5) when no model is given.
config::VisionConfig default_vision() {
  config::VisionConfig v;
  v.image_size = data::kTileSize;
  v.patch_size = 14;
  v.pixel_shuffle_ratio = 0.5;
  return v;
}

// A choice-valued flag: the value, or an error listing the choices.
std::string choice(const ParsedArgs& args, const std::string& flag, const std::vector<std::string>& choices,
                   const std::string& fallback) {
  const std::string value = args.get(flag, fallback);
  L4_CHECK(std::find(choices.begin(), choices.end(), value) != choices.end(),
           "llama4 prepare: --{}: expected one of {}, got '{}'{}", flag, join(choices, ", "), value,
           did_you_mean(value, choices));
  return value;
}

int run_prepare(const ParsedArgs& args) {
  data::PrepareOptions opt;
  std::string tokenizer_path;
  config::VisionConfig vision = default_vision();
  if (args.has("config")) {
    L4_CHECK(!args.has("input") && !args.has("output"),
             "llama4 prepare: give either --config or --input/--output, not both");
    for (const char* flag : {"format", "train-on", "overlong", "seq-len"}) {
      L4_CHECK(!args.has(flag),
               "llama4 prepare: --{} is for the --input form; with --config set the data.* key", flag);
    }
    const config::Recipe recipe = config::load_recipe(args.get("config"), args.positionals());
    const config::DataSection& d = recipe.data;
    L4_CHECK(!d.sources.empty(), "{}: data.sources is empty: nothing to prepare", recipe.source);
    L4_CHECK(!d.train.empty(), "{}: data.train (the dataset directory to write) is not set", recipe.source);
    L4_CHECK(!recipe.tokenizer.path.empty(), "{}: tokenizer.path is not set", recipe.source);
    opt.inputs = d.sources;
    opt.format = d.format;
    opt.text_doc_bytes = static_cast<uint64_t>(d.text_doc_bytes);
    opt.train_on = d.train_on;
    opt.overlong = d.overlong;
    opt.seq_len = static_cast<uint64_t>(d.seq_len);
    opt.train_dir = d.train;
    opt.eval_dir = d.eval;
    L4_CHECK(d.eval_sources.empty() || !d.eval.empty(),
             "{}: data.eval_sources needs data.eval (the eval dataset directory to write)", recipe.source);
    opt.eval_inputs = d.eval_sources;
    opt.eval_fraction = d.eval.empty() ? 0.0 : d.eval_fraction;
    opt.skip_bad_records = d.skip_bad_records;
    tokenizer_path = recipe.tokenizer.path;
    if (recipe.arch.vision_config) vision = *recipe.arch.vision_config;
  } else {
    L4_CHECK(args.positionals().empty(), "llama4 prepare: key=value overrides need --config");
    opt.inputs = args.all("input");
    L4_CHECK(!opt.inputs.empty(),
             "llama4 prepare: give --config RECIPE.yaml or --input FILE... (see --help)");
    opt.train_dir = args.require("output", "prepare");
    tokenizer_path = args.require("tokenizer", "prepare");
    opt.format = choice(args, "format", data::format_names(), "auto");
    opt.train_on = choice(args, "train-on", data::train_on_names(), "assistant");
    opt.overlong = choice(args, "overlong", data::overlong_names(), "split");
    if (args.has("seq-len")) {
      const long long n = args.get_int("seq-len", 0);
      L4_CHECK(n >= 2, "llama4 prepare: --seq-len must be >= 2, got {}", n);
      opt.seq_len = static_cast<uint64_t>(n);
    }
    L4_CHECK(!args.has("overlong") || args.has("seq-len"), "llama4 prepare: --overlong needs --seq-len");
    opt.eval_dir = args.get("eval-output");
    opt.eval_inputs = args.all("eval-input");
    L4_CHECK(opt.eval_inputs.empty() || !opt.eval_dir.empty(),
             "llama4 prepare: --eval-input needs --eval-output");
    opt.eval_fraction = args.get_double("eval-fraction", opt.eval_dir.empty() ? 0.0 : 0.05);
    L4_CHECK(!args.has("eval-fraction") || !opt.eval_dir.empty(),
             "llama4 prepare: --eval-fraction needs --eval-output");
    opt.skip_bad_records = args.has("skip-bad-records");
  }
  if (args.has("shard-mb")) {
    const double mb = args.get_double("shard-mb", 256);
    L4_CHECK(mb > 0, "--shard-mb must be > 0, got {}", mb);
    opt.shard_bytes = static_cast<uint64_t>(mb * (1 << 20));
  }
  if (args.has("text-doc-bytes")) {
    const long long n = args.get_int("text-doc-bytes", 2048);
    L4_CHECK(n >= 1, "--text-doc-bytes must be >= 1, got {}", n);
    opt.text_doc_bytes = static_cast<uint64_t>(n);
  }

  // The eval split written into the train directory would replace (or interleave with) the train shards.
  if (!opt.eval_dir.empty()) {
    auto resolved = [](const std::string& dir) {
      std::string path = std::filesystem::weakly_canonical(dir).string();
      while (path.size() > 1 && path.back() == '/') path.pop_back();  // "ds/" is "ds"
      return path;
    };
    const bool same = resolved(opt.train_dir) == resolved(opt.eval_dir);
    L4_CHECK(
        !same,
        "llama4 prepare: the train output '{}' and the eval output '{}' are the same directory; give the "
        "eval split its own (data.train / data.eval, or --output / --eval-output)",
        opt.train_dir, opt.eval_dir);
  }

  MpiPrepareComm comm;
  const TokenizerEncoder encoder(tokenizer::Tokenizer::load(tokenizer_path), vision);
  const data::PrepareReport r = data::prepare_dataset(opt, encoder, comm);
  if (comm.rank() != 0) return 0;
  std::string out = fmt::format(
      "prepared {} records from {} file(s) with {} process(es) in {:.1f} s ({:.0f} records/s, {:.2f} MB/s): "
      "{} tokens\n",
      r.records - r.skipped, r.files, comm.size(), r.seconds, r.records / std::max(r.seconds, 1e-9),
      r.input_bytes / 1e6 / std::max(r.seconds, 1e-9), r.tokens);
  if (opt.eval_dir.empty()) {
    out += fmt::format("  {} documents -> {}\n", r.train_documents, opt.train_dir);
  } else {
    out += fmt::format("  train: {} documents -> {}\n  eval:  {} documents -> {}\n", r.train_documents,
                       opt.train_dir, r.eval_documents, opt.eval_dir);
  }
  if (!opt.eval_dir.empty() && r.eval_documents == 0) {
    out += fmt::format("  warning: no record fell into the eval split (eval_fraction {}): {} is empty\n",
                       opt.eval_fraction, opt.eval_dir);
  }
  if (r.conversations_split + r.conversations_truncated + r.conversations_dropped > 0) {
    out += fmt::format(
        "  conversations over {} tokens (overlong: {}): {} split at turns, {} truncated, {} left "
        "out\n",
        opt.seq_len, opt.overlong, r.conversations_split, r.conversations_truncated, r.conversations_dropped);
  }
  if (r.skipped > 0) {
    out += fmt::format("  skipped {} bad record(s) (data.skip_bad_records), e.g.:\n", r.skipped);
    for (const std::string& e : r.skipped_examples) out += "    " + e + "\n";
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace

Command make_prepare_command() {
  return {
      {"prepare",
       "JSONL/text (+images) -> HDF5 dataset shards",
       "--config RECIPE.yaml [key=value ...] | --input FILE|DIR... --output DIR --tokenizer T [options]",
       {{"config", "FILE", "recipe: prepares data.sources into data.train (and data.eval)"},
        {"input", "FILE...", "input files, or directories of them", true},
        {"output", "DIR", "dataset directory to write"},
        {"tokenizer", "T", "tokenizer.model, tokenizer.json or a directory"},
        {"format", "FMT", "auto (default: by extension, records by keys), text, jsonl, chat or parquet"},
        {"train-on", "T", "conversation targets: assistant (default), all or last_turn"},
        {"seq-len", "N", "fit conversations into N tokens (data.seq_len) by --overlong"},
        {"overlong", "P", "conversations over --seq-len: split (default, at turns), truncate or drop"},
        {"eval-output", "DIR", "also write an eval split here"},
        {"eval-input", "FILE...", "held-out inputs: all their records go to --eval-output", true},
        {"eval-fraction", "F", "share of records hashed into the eval split (default 0.05)"},
        {"skip-bad-records", "", "skip and count malformed records instead of stopping"},
        {"shard-mb", "N", "shard size limit in MiB (default 256)"},
        {"text-doc-bytes", "N", "format text: a document ends at the first line end after N bytes (2048)"}},
       /*accepts_overrides=*/true},
      run_prepare};
}

}  // namespace l4::cli
