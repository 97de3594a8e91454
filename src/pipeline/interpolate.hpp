// Derived sources between two keyframes of a timeline (docs/movies.md, "Pipeline layers"):
// the live parameters of a pipeline interpolate, everything else switches at the midpoint.
// Pure JSON over the registry's parameter schemas; the hosts (a movie job's view sources,
// a session's preview) turn the result into a source (render::SourceBlend).
#pragma once

#include <nlohmann/json.hpp>

#include "core/params.hpp"
#include "pipeline/pipeline.hpp"

namespace vx::pipeline {

// The parameters between `a` and `b` (both validated against `schema`, defaults filled) at
// eased fraction `u` in [0, 1]. A parameter interpolates when its spec is live and numeric
// (number or integer; per-axis values element by element, a single number standing for
// every axis) and both values are numbers: linearly, integers rounded to the nearest, kept
// within the spec's minimum and maximum. Any other parameter (a choice, a string, a boolean,
// a load-time parameter, one the schema does not know) takes a's value while u < 0.5 and
// b's from u >= 0.5. u <= 0 gives a and u >= 1 gives b exactly.
json interpolate_params(const ParamSchema& schema, const json& a, const json& b, double u);

// Two derived-source specifications, {"pipeline", "input", "params"} with the parameters
// validated (DerivedSpec::params), or plain source indices. The same pipeline on both sides:
// its parameters by interpolate_params() and its input by this function again (chains).
// A change of pipeline, an index on either side, or a pipeline the registry does not know
// switches at the midpoint.
json interpolate_source(const Registry& registry, const json& a, const json& b, double u);

}  // namespace vx::pipeline
