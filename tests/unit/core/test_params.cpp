#include <gtest/gtest.h>

#include "core/params.hpp"

namespace vx {
namespace {

ParamSchema schema() {
  ParamSchema s;
  s.number("sigma", 2.0).range(0, 50).axes().with_unit("physical").with_step(0.1);
  s.integer("radius", 1).range(0, 8);
  s.choice("method", "otsu", {"otsu", "manual"});
  s.boolean("invert", false).load_time();
  return s;
}

TEST(Params, DefaultsFilled) {
  auto p = schema().validate(json::object());
  ASSERT_TRUE(p) << p.error().what();
  EXPECT_EQ((*p)["sigma"], 2.0);
  EXPECT_EQ((*p)["radius"], 1);
  EXPECT_EQ((*p)["method"], "otsu");
  EXPECT_EQ((*p)["invert"], false);
  EXPECT_TRUE(schema().validate(nullptr));
}

TEST(Params, ErrorsNameTheField) {
  const auto s = schema();
  auto check = [&](const json& in, const std::string& field) {
    auto r = s.validate(in, "layers[1].source.params");
    ASSERT_FALSE(r) << in.dump();
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().message.rfind("layers[1].source.params." + field, 0), 0u)
        << r.error().message;
  };
  check({{"sigma", -1}}, "sigma");
  check({{"sigma", "big"}}, "sigma");
  check({{"sigma", json::array({1, -2})}}, "sigma[1]");
  check({{"radius", 1.5}}, "radius");
  check({{"radius", 9}}, "radius");
  check({{"method", "triangle"}}, "method");
  check({{"invert", 1}}, "invert");
  check({{"sigmaa", 1}}, "sigmaa");
  auto r = s.validate({{"method", "x"}});
  EXPECT_NE(r.error().message.find("'otsu', 'manual'"), std::string::npos);
}

TEST(Params, AcceptsPerAxisAndWholeFloats) {
  auto p = schema().validate({{"sigma", json::array({1, 2, 2.5})}, {"radius", 2.0}});
  ASSERT_TRUE(p) << p.error().what();
  EXPECT_EQ((*p)["sigma"][2], 2.5);
  EXPECT_TRUE((*p)["radius"].is_number_integer());
}

TEST(Params, JsonSchema) {
  const auto js = schema().to_json_schema();
  EXPECT_EQ(js["type"], "object");
  EXPECT_EQ(js["additionalProperties"], false);
  EXPECT_EQ(js["properties"]["radius"]["type"], "integer");
  EXPECT_EQ(js["properties"]["radius"]["maximum"], 8.0);
  EXPECT_EQ(js["properties"]["method"]["enum"], json({"otsu", "manual"}));
  EXPECT_EQ(js["properties"]["sigma"]["x-unit"], "physical");
  EXPECT_EQ(js["properties"]["sigma"]["oneOf"][1]["type"], "array");
  EXPECT_EQ(js["properties"]["invert"]["x-live"], false);
  EXPECT_EQ(js["properties"]["sigma"]["default"], 2.0);
}

TEST(Params, ParsesTheCommandLineForm) {
  auto p = schema().parse_cli("sigma=1/2/2,method=manual,invert=true");
  ASSERT_TRUE(p) << p.error().what();
  EXPECT_EQ((*p)["sigma"], json({1.0, 2.0, 2.0}));
  EXPECT_EQ((*p)["method"], "manual");
  EXPECT_EQ((*p)["invert"], true);
  auto bad = schema().parse_cli("sigma=abc");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("params.sigma"), std::string::npos);
  EXPECT_FALSE(schema().parse_cli("radius"));
}

TEST(Params, ReadsBackItsOwnJsonSchema) {
  const auto js = schema().to_json_schema();
  auto back = ParamSchema::from_json_schema(js, "schema");
  ASSERT_TRUE(back) << back.error().what();
  EXPECT_EQ(back->to_json_schema(), js);
  EXPECT_TRUE(back->find("sigma")->per_axis);
  EXPECT_FALSE(back->find("invert")->live);
}

TEST(Params, RefusesMalformedSchemasNamingTheField) {
  auto err = [](json js) {
    auto r = ParamSchema::from_json_schema(js, "schema");
    EXPECT_FALSE(r) << js.dump();
    return r ? std::string() : r.error().message;
  };
  auto prop = [](json p) { return json{{"type", "object"}, {"properties", {{"x", p}}}}; };
  EXPECT_NE(err(json::array()).find("must be an object"), std::string::npos);
  EXPECT_NE(err(json{{"type", "object"}}).find("schema.properties"), std::string::npos);
  EXPECT_NE(err(prop({{"type", "complex"}, {"default", 1}})).find("schema.properties.x"),
            std::string::npos);
  EXPECT_NE(err(prop({{"type", "number"}})).find("'default' is required"), std::string::npos);
  EXPECT_NE(err(prop({{"type", "number"}, {"default", 9}, {"maximum", 3}}))
                .find("schema.properties.x.default: must be <= 3"),
            std::string::npos);
  EXPECT_NE(err(prop({{"type", "string"}, {"enum", json::array()}, {"default", "a"}})).find("enum"),
            std::string::npos);
  EXPECT_NE(err(prop({{"type", "number"}, {"default", 1}, {"x-live", "yes"}})).find("x-live"),
            std::string::npos);
  EXPECT_NE(err(json{{"properties", {{"_x", {{"type", "number"}, {"default", 1}}}}}})
                .find("parameter name"),
            std::string::npos);
}

}  // namespace
}  // namespace vx
