// Renderer selection, like the encoders' (codec/encoder.hpp): a probed table, best first,
// with the CPU backend as the fallback that always works.
//   cuda: where the binary was built with CUDA (-DVOXCAST_CUDA, nvcc found) and a driver
//         and a device are present at run time (probed once per process);
//   cpu:  always.
// "auto" takes the first that opens and says why a better one was not used; naming a
// backend takes that one or fails with the reason (never a silent fallback).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/resources.hpp"
#include "render/renderer.hpp"

namespace vx::render {

struct RendererChoice {
  std::unique_ptr<Renderer> renderer;
  std::string name;  // "cuda" or "cpu"
  // Why a better backend was not used ("cuda: built without CUDA ..."), or empty.
  std::string fallback;
};

// `choice`: "auto", "cpu" or "cuda". kInvalidArgument for another name; kUnsupported naming
// the reason when the backend asked for is not available here.
Result<RendererChoice> make_renderer(std::string_view choice = "auto");

// Whether the CUDA backend can run here: ok, or why not ("built without CUDA", "no CUDA
// driver: ...", "no CUDA device"). Probed once per process.
Status cuda_renderer_available();

// The device-memory budgets of the backends in use in this process (the CUDA brick pool's
// "device" budget while a CUDA renderer holds it); empty on the CPU backend.
std::vector<BudgetSnapshot> device_budgets();

}  // namespace vx::render
