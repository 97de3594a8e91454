// Pipeline parameters between keyframes (pipeline/interpolate.hpp, docs/movies.md): live
// numbers interpolate (integers rounded, kept in range), the rest switches at the midpoint.
#include <gtest/gtest.h>

#include "pipeline/interpolate.hpp"

namespace vx::pipeline {
namespace {

class Nothing final : public Pipeline {
 public:
  Ext3 halo(const json&, const LevelContext&) const override { return {0, 0, 0}; }
  Status process(const json&, const LevelContext&, const BlockView&,
                 const BlockView&) const override {
    return {};
  }
};

// One pipeline with a parameter of every kind.
Registry registry() {
  Registry r;
  Descriptor d{"p", "1", "test", {}, [] { return std::make_unique<Nothing>(); }};
  d.schema.number("sigma", 1.0).range(0.5, 10).axes();
  d.schema.integer("radius", 1).range(0, 8);
  d.schema.number("bias", 0);
  d.schema.choice("method", "otsu", {"otsu", "manual"});
  d.schema.string("file", "");
  d.schema.boolean("flag", false);
  d.schema.number("scale", 1).load_time();
  d.schema.integer("window", 3).load_time();
  EXPECT_TRUE(r.add(std::move(d)));
  Descriptor q{"q", "1", "other", {}, [] { return std::make_unique<Nothing>(); }};
  q.schema.number("sigma", 1.0);
  EXPECT_TRUE(r.add(std::move(q)));
  return r;
}

json params(const Registry& r, json in) {
  auto p = r.find("p")->schema.validate(in);
  EXPECT_TRUE(p) << p.error().message;
  return *p;
}

json spec(json params, json input = 0, std::string name = "p") {
  return {{"pipeline", name}, {"input", input}, {"params", params}};
}

TEST(Interpolate, EndpointsAreExact) {
  const auto r = registry();
  const auto a = params(r, {{"sigma", 1.3}, {"radius", 2}, {"method", "otsu"}});
  const auto b = params(r, {{"sigma", 7.7}, {"radius", 7}, {"method", "manual"}});
  const auto& s = r.find("p")->schema;
  EXPECT_EQ(interpolate_params(s, a, b, 0), a);
  EXPECT_EQ(interpolate_params(s, a, b, 1), b);
  EXPECT_EQ(interpolate_params(s, a, b, -0.5), a);
  EXPECT_EQ(interpolate_params(s, a, b, 1.5), b);
  EXPECT_EQ(interpolate_source(r, spec(a), spec(b), 0), spec(a));
  EXPECT_EQ(interpolate_source(r, spec(a), spec(b), 1), spec(b));
}

TEST(Interpolate, LiveNumbersMoveAndIntegersRound) {
  const auto r = registry();
  const auto& s = r.find("p")->schema;
  const auto a = params(r, {{"sigma", 1.0}, {"radius", 0}, {"bias", -4}});
  const auto b = params(r, {{"sigma", 3.0}, {"radius", 5}, {"bias", 4}});
  const auto m = interpolate_params(s, a, b, 0.25);
  EXPECT_DOUBLE_EQ(m["sigma"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(m["bias"].get<double>(), -2);
  ASSERT_TRUE(m["radius"].is_number_integer()) << m.dump();
  EXPECT_EQ(m["radius"].get<int>(), 1);                                 // 1.25 rounds to 1
  EXPECT_EQ(interpolate_params(s, a, b, 0.5)["radius"].get<int>(), 3);  // 2.5 rounds up
  EXPECT_EQ(interpolate_params(s, a, b, 0.9)["radius"].get<int>(), 5);  // 4.5 -> 5
  // Monotonic along the way.
  double last = 0;
  for (int i = 0; i <= 20; ++i) {
    const double v = interpolate_params(s, a, b, i / 20.0)["sigma"].get<double>();
    EXPECT_GE(v, last);
    last = v;
  }
}

TEST(Interpolate, PerAxisValuesElementByElement) {
  const auto r = registry();
  const auto& s = r.find("p")->schema;
  const auto a = params(r, {{"sigma", json::array({1.0, 2.0, 2.0})}});
  const auto b = params(r, {{"sigma", 3.0}});  // one number: every axis
  const auto m = interpolate_params(s, a, b, 0.5);
  EXPECT_EQ(m["sigma"], json::array({2.0, 2.5, 2.5}));
  // Arrays of different lengths cannot pair up: they switch.
  const auto c = params(r, {{"sigma", json::array({1.0, 2.0})}});
  EXPECT_EQ(interpolate_params(s, a, c, 0.4)["sigma"], a["sigma"]);
  EXPECT_EQ(interpolate_params(s, a, c, 0.6)["sigma"], c["sigma"]);
}

TEST(Interpolate, ValuesStayWithinTheSchemasRange) {
  // Keyframes hold valid values, so a lerp between them stays inside; the clamp guards
  // values that arrive from elsewhere (a schema narrowed since the timeline was written).
  const auto r = registry();
  const auto& s = r.find("p")->schema;
  const json a{{"sigma", 0.0}, {"radius", -3}}, b{{"sigma", 20.0}, {"radius", 30}};
  for (double u : {0.01, 0.2, 0.5, 0.8, 0.99}) {
    const auto m = interpolate_params(s, a, b, u);
    EXPECT_GE(m["sigma"].get<double>(), 0.5) << u;
    EXPECT_LE(m["sigma"].get<double>(), 10) << u;
    EXPECT_GE(m["radius"].get<int>(), 0) << u;
    EXPECT_LE(m["radius"].get<int>(), 8) << u;
  }
}

TEST(Interpolate, DiscreteAndLoadTimeParametersSwitchAtTheMidpoint) {
  const auto r = registry();
  const auto& s = r.find("p")->schema;
  const auto a = params(
      r, {{"method", "otsu"}, {"file", "a.npy"}, {"flag", false}, {"scale", 1.0}, {"window", 3}});
  const auto b = params(
      r, {{"method", "manual"}, {"file", "b.npy"}, {"flag", true}, {"scale", 5.0}, {"window", 9}});
  for (double u : {0.01, 0.25, 0.4999}) {
    const auto m = interpolate_params(s, a, b, u);
    for (const char* k : {"method", "file", "flag", "scale", "window"})
      EXPECT_EQ(m[k], a[k]) << k << " at " << u;
  }
  for (double u : {0.5, 0.75, 0.99}) {
    const auto m = interpolate_params(s, a, b, u);
    for (const char* k : {"method", "file", "flag", "scale", "window"})
      EXPECT_EQ(m[k], b[k]) << k << " at " << u;
  }
}

TEST(Interpolate, AChangeOfPipelineSwitchesAtTheMidpoint) {
  const auto r = registry();
  const auto a = spec(params(r, {{"sigma", 1.0}}));
  const json b = spec({{"sigma", 9.0}}, 0, "q");
  EXPECT_EQ(interpolate_source(r, a, b, 0.49), a);
  EXPECT_EQ(interpolate_source(r, a, b, 0.5), b);
  // An index on one side (the dataset, or another source) switches too.
  EXPECT_EQ(interpolate_source(r, a, json(0), 0.3), a);
  EXPECT_EQ(interpolate_source(r, a, json(0), 0.7), json(0));
  // Unknown to the registry: nothing to interpolate by.
  const json x = spec({{"sigma", 1.0}}, 0, "gone"), y = spec({{"sigma", 3.0}}, 0, "gone");
  EXPECT_EQ(interpolate_source(r, x, y, 0.3), x);
}

TEST(Interpolate, ChainsInterpolateEveryLink) {
  const auto r = registry();
  const auto a = spec(params(r, {{"radius", 2}}), spec(params(r, {{"sigma", 1.0}})));
  const auto b = spec(params(r, {{"radius", 6}}), spec(params(r, {{"sigma", 5.0}})));
  const auto m = interpolate_source(r, a, b, 0.5);
  EXPECT_EQ(m["pipeline"], "p");
  EXPECT_EQ(m["params"]["radius"].get<int>(), 4);
  EXPECT_DOUBLE_EQ(m["input"]["params"]["sigma"].get<double>(), 3.0);
  EXPECT_EQ(m["input"]["input"], 0);
}

}  // namespace
}  // namespace vx::pipeline
