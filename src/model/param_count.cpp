#include "model/param_count.h"

namespace l4::model {
namespace {

int64_t vision_param_count(const config::VisionConfig& v, int64_t text_hidden) {
  const int64_t h = v.hidden_size;
  const int64_t patches = (v.image_size / v.patch_size) * (v.image_size / v.patch_size) + 1;  // + CLS
  int64_t n = v.num_channels * v.patch_size * v.patch_size * h;  // unfold patch embedding, no bias
  n += h;                                                        // class_embedding
  n += patches * h;                                              // positional_embedding_vlm
  n += 2 * 2 * h;                                                // layernorm_pre / layernorm_post
  const int64_t per_layer = 4 * (h * h + h)                      // q, k, v, o with biases
                            + (h * v.intermediate_size + v.intermediate_size)  // fc1
                            + (v.intermediate_size * h + h)                    // fc2
                            + 2 * 2 * h;                                       // two LayerNorms
  n += v.num_hidden_layers * per_layer;
  n += v.intermediate_size * v.projector_input_dim;         // vision_adapter.mlp.fc1
  n += v.projector_output_dim * v.projector_output_dim;     // vision_adapter.mlp.fc2
  n += v.vision_output_dim * text_hidden;                   // multi_modal_projector.linear_1
  return n;
}

}  // namespace

ParamSummary count_params(const config::ModelArch& arch) {
  const config::TextConfig& t = arch.text_config;
  const int64_t d = t.hidden_size;
  const int64_t hd = t.resolved_head_dim();
  ParamSummary summary;
  const int64_t attention = d * t.num_attention_heads * hd          // q_proj
                            + 2 * d * t.num_key_value_heads * hd    // k_proj, v_proj
                            + t.num_attention_heads * hd * d;       // o_proj
  const int64_t norms = 2 * d;
  const int64_t expert = 3 * d * t.intermediate_size;  // gate, up, down of one SwiGLU expert
  for (int64_t i = 0; i < t.num_hidden_layers; ++i) {
    LayerSummary layer;
    layer.moe = t.is_moe_layer(i);
    layer.rope = t.is_rope_layer(i);
    layer.params = attention + norms;
    layer.active_params = attention + norms;
    if (layer.moe) {
      const int64_t router = t.num_local_experts * d;
      layer.params += router + t.num_local_experts * expert + expert;  // routed + shared expert
      layer.active_params += router + t.num_experts_per_tok * expert + expert;
    } else {
      layer.params += 3 * d * t.intermediate_size_mlp;
      layer.active_params += 3 * d * t.intermediate_size_mlp;
    }
    summary.text_params += layer.params;
    summary.text_active_params += layer.active_params;
    summary.layers.push_back(layer);
  }
  const int64_t embeddings = t.vocab_size * d * (t.tie_word_embeddings ? 1 : 2) + d;  // + final norm
  summary.text_params += embeddings;
  summary.text_active_params += embeddings;
  if (arch.vision_config) summary.vision_params = vision_param_count(*arch.vision_config, d);
  return summary;
}

}  // namespace l4::model
