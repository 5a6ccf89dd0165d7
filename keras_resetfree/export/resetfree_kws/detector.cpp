#include "detector.h"

#include <math.h>

namespace resetfree {

void Softmax(const float* logits, int n, float* probs) {
  float top = logits[0];
  for (int i = 1; i < n; ++i) top = logits[i] > top ? logits[i] : top;
  float total = 0.0f;
  for (int i = 0; i < n; ++i) {
    probs[i] = expf(logits[i] - top);
    total += probs[i];
  }
  for (int i = 0; i < n; ++i) probs[i] /= total;
}

}  // namespace resetfree
