// Per-frame posteriors to keyword detections, causally: the same rule as
// keras_resetfree.metrics.detect (moving average over the last
// `smoothing_frames` frames, the best non-ignored class fires when its average
// first exceeds `threshold`, then nothing fires for `refractory_frames`).
// Portable C++11, tested on the host against the Python function.
#ifndef RESETFREE_DETECTOR_H_
#define RESETFREE_DETECTOR_H_

namespace resetfree {

// Numerically safe softmax of `n` logits.
void Softmax(const float* logits, int n, float* probs);

// Capacities are template arguments, so the board holds exactly
// kMaxSmoothingFrames x kMaxClasses floats of history.
template <int kMaxClasses, int kMaxSmoothingFrames>
class PosteriorDetector {
 public:
  // `ignored`: per class, true for classes never reported (e.g. silence);
  // may be null. Valid() is false when a setting is out of range.
  PosteriorDetector(int num_classes, double threshold, int smoothing_frames,
                    int refractory_frames, const bool* ignored)
      : num_classes_(num_classes),
        threshold_(threshold),
        smoothing_frames_(smoothing_frames),
        refractory_frames_(refractory_frames) {
    valid_ = num_classes > 0 && num_classes <= kMaxClasses &&
             smoothing_frames > 0 && smoothing_frames <= kMaxSmoothingFrames &&
             refractory_frames >= 0;
    for (int c = 0; c < kMaxClasses; ++c) {
      ignored_[c] = ignored != nullptr && c < num_classes && ignored[c];
    }
  }

  bool Valid() const { return valid_; }

  // One frame's probabilities in; the detected class out, or -1.
  int Update(const float* probs) {
    if (!valid_) return -1;
    ++frame_;
    float* slot = history_[frame_ % smoothing_frames_];
    for (int c = 0; c < num_classes_; ++c) slot[c] = probs[c];
    long seen = frame_ + 1;
    int count = seen < smoothing_frames_ ? static_cast<int>(seen)
                                         : smoothing_frames_;
    int best = -1;
    double best_score = 0.0;
    for (int c = 0; c < num_classes_; ++c) {
      double sum = 0.0;
      for (int i = 0; i < count; ++i) sum += history_[i][c];
      double score = ignored_[c] ? 0.0 : sum / count;
      if (best < 0 || score > best_score) {
        best = c;
        best_score = score;
      }
    }
    last_score_ = static_cast<float>(best_score);
    if (best_score > threshold_ && frame_ > quiet_until_) {
      quiet_until_ = frame_ + refractory_frames_;
      return best;
    }
    return -1;
  }

  // The smoothed posterior of the last Update's best class.
  float LastScore() const { return last_score_; }

 private:
  int num_classes_;
  double threshold_;
  int smoothing_frames_;
  int refractory_frames_;
  bool ignored_[kMaxClasses];
  float history_[kMaxSmoothingFrames][kMaxClasses];
  long frame_ = -1;
  long quiet_until_ = -1;
  float last_score_ = 0.0f;
  bool valid_;
};

}  // namespace resetfree

#endif  // RESETFREE_DETECTOR_H_
