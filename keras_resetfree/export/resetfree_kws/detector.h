// Per-frame posteriors to keyword detections, causally: the same rule as
// keras_resetfree.metrics.detect (moving average over the last
// `smoothing_frames` frames, the best non-ignored class fires when its average
// first exceeds `threshold`, then nothing fires for `refractory_frames`).
// Portable C++11, tested on the host against the Python function.
//
// Endless-stream safe: no decision depends on a growing counter. The
// smoothing window is a ring index below kMaxSmoothingFrames, the refractory
// period a countdown; the only counter, the 64-bit frame number reported with
// each detection, lasts 11 billion years at 50 frames/s, and its wrap (unsigned,
// defined) would change no decision.
#ifndef RESETFREE_DETECTOR_H_
#define RESETFREE_DETECTOR_H_

#include <stdint.h>

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
    slot_ = (slot_ + 1) % smoothing_frames_;
    float* slot = history_[slot_];
    for (int c = 0; c < num_classes_; ++c) slot[c] = probs[c];
    if (filled_ < smoothing_frames_) ++filled_;
    const bool quiet = quiet_ > 0;
    if (quiet) --quiet_;
    int best = -1;
    double best_score = 0.0;
    for (int c = 0; c < num_classes_; ++c) {
      double sum = 0.0;
      for (int i = 0; i < filled_; ++i) sum += history_[i][c];
      double score = ignored_[c] ? 0.0 : sum / filled_;
      if (best < 0 || score > best_score) {
        best = c;
        best_score = score;
      }
    }
    last_score_ = static_cast<float>(best_score);
    if (best_score > threshold_ && !quiet) {
      quiet_ = refractory_frames_;
      return best;
    }
    return -1;
  }

  // The smoothed posterior of the last Update's best class.
  float LastScore() const { return last_score_; }

  // Frames seen so far, minus one (the index of the last Update's frame).
  uint64_t Frame() const { return frame_; }

  // Starts the frame count elsewhere (tests start it just below a wrap).
  void SetFrame(uint64_t frame) { frame_ = frame; }

 private:
  int num_classes_;
  double threshold_;
  int smoothing_frames_;
  int refractory_frames_;
  bool ignored_[kMaxClasses];
  float history_[kMaxSmoothingFrames][kMaxClasses];
  uint64_t frame_ = UINT64_MAX;  // the first Update makes it 0
  int slot_ = -1;                // ring index of the newest frame
  int filled_ = 0;               // frames in the window, up to smoothing_frames_
  int quiet_ = 0;                // frames left in the refractory period
  float last_score_ = 0.0f;
  bool valid_;
};

// Time since start from a 64-bit frame count: no wrap in any board's life.
inline uint64_t FrameSeconds(uint64_t frames, int frame_step, int sample_rate) {
  return frames / static_cast<uint64_t>(sample_rate) *
             static_cast<uint64_t>(frame_step) +
         frames % static_cast<uint64_t>(sample_rate) *
             static_cast<uint64_t>(frame_step) / static_cast<uint64_t>(sample_rate);
}

}  // namespace resetfree

#endif  // RESETFREE_DETECTOR_H_
