// threshold: a label layer, 1 where the input is above the threshold and 0 elsewhere. The
// threshold is given (method "manual") or Otsu's, computed once on the coarsest level as
// skimage.filters.threshold_otsu does (integer data: one bin per value; else 256 bins).
#include <algorithm>
#include <cmath>

#include "pipeline/kernels.hpp"

namespace vx::pipeline::builtin {
namespace {

double otsu(const std::vector<float>& v, bool integer) {
  if (v.empty()) return 0;
  const auto [lo_it, hi_it] = std::minmax_element(v.begin(), v.end());
  const double lo = *lo_it, hi = *hi_it;
  if (lo == hi) return lo;
  std::vector<double> hist, centres;
  if (integer) {
    const auto n = std::size_t(hi - lo + 1);
    hist.assign(n, 0);
    centres.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      centres[i] = lo + double(i);
    for (float x : v)
      hist[std::size_t(double(x) - lo)] += 1;
  } else {
    constexpr int kBins = 256;
    hist.assign(kBins, 0);
    centres.resize(kBins);
    const double w = (hi - lo) / kBins;
    for (int i = 0; i < kBins; ++i)
      centres[std::size_t(i)] = lo + (i + 0.5) * w;
    for (float x : v)
      hist[std::size_t(std::min(kBins - 1, int((double(x) - lo) / w)))] += 1;
  }
  const std::size_t n = hist.size();
  std::vector<double> w1(n), w2(n), m1(n), m2(n);
  double cw = 0, cm = 0;
  for (std::size_t i = 0; i < n; ++i) {
    cw += hist[i];
    cm += hist[i] * centres[i];
    w1[i] = cw;
    m1[i] = cw > 0 ? cm / cw : 0;
  }
  cw = cm = 0;
  for (std::size_t i = n; i-- > 0;) {
    cw += hist[i];
    cm += hist[i] * centres[i];
    w2[i] = cw;
    m2[i] = cw > 0 ? cm / cw : 0;
  }
  std::size_t best = 0;
  double best_v = -1;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const double d = m1[i] - m2[i + 1];
    const double var = w1[i] * w2[i + 1] * d * d;
    if (var > best_v) {
      best_v = var;
      best = i;
    }
  }
  return centres[best];
}

bool is_integer(data::DType t) {
  return t != data::DType::kFloat32 && t != data::DType::kFloat64;
}

class Threshold final : public Pipeline {
 public:
  data::DType output_dtype(data::DType, const json&) const override { return data::DType::kUInt8; }
  Result<json> prepare(const json& p, data::DType input, int levels,
                       const LevelReader& read) const override {
    json out = p;
    if (p["method"] == "manual") {
      out["_threshold"] = p["value"];
      return out;
    }
    Ext3 shape{};
    VX_ASSIGN(auto values, read(levels - 1, shape));
    out["_threshold"] = otsu(values, is_integer(input));
    return out;
  }
  Ext3 halo(const json&, const LevelContext&) const override { return {0, 0, 0}; }
  std::uint64_t scratch_bytes(const json&, const Ext3&) const override { return 0; }
  Status process(const json& p, const LevelContext&, const BlockView& in,
                 const BlockView& out) const override {
    const auto t = float(p["_threshold"].get<double>());
    for (std::int64_t i = 0; i < out.voxels(); ++i)
      out.data[i] = in.data[i] > t ? 1.0f : 0.0f;
    return {};
  }
};

}  // namespace

void register_threshold(Registry& r) {
  Descriptor d{"threshold",
               "1.0",
               "Labels: 1 above a threshold (manual, or Otsu's on the coarsest level), else 0",
               {},
               [] { return std::make_unique<Threshold>(); }};
  d.schema.choice("method", "otsu", {"otsu", "manual"});
  d.schema.number("value", 0).describe("the threshold for method 'manual', in data units");
  (void)r.add(std::move(d));
}

}  // namespace vx::pipeline::builtin
