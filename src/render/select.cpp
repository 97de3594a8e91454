#include "render/select.hpp"

#include <mutex>
#include <optional>

#include "core/log.hpp"
#include "render/cuda_backend.hpp"

namespace vx::render {

Status cuda_renderer_available() {
  // Whether a device is here does not change while the process runs: probe once (a failed
  // probe loads the driver library again and costs milliseconds). Process-wide on purpose.
  static std::once_flag once;
  static std::optional<Error> failure;
  std::call_once(once, [] {
    auto s = probe_cuda();
    if (!s) failure = s.error();
  });
  if (failure) return tl::unexpected(*failure);
  return {};
}

Result<RendererChoice> make_renderer(std::string_view choice) {
  if (choice != "auto" && choice != "cpu" && choice != "cuda")
    return fail(ErrorCode::kInvalidArgument, "renderer '{}': expected auto, cpu or cuda", choice);
  RendererChoice out;
  if (choice != "cpu") {
    std::string why;
    if (auto ok = cuda_renderer_available(); !ok) {
      why = ok.error().message;
    } else if (auto r = open_cuda_renderer(); !r) {
      why = r.error().message;
    } else {
      out.renderer = std::move(*r);
      out.name = "cuda";
      return out;
    }
    if (choice == "cuda")
      return fail(ErrorCode::kUnsupported, "renderer 'cuda' is not available here: {}", why);
    out.fallback = "cuda: " + why;
    static std::once_flag logged;  // once per process, not once per session
    std::call_once(logged, [&] {
      VX_LOG(info, "renderer.fallback", "from=cuda to=cpu reason={}", log_quote(why));
    });
  }
  out.renderer = make_cpu_renderer();
  out.name = "cpu";
  return out;
}

std::vector<BudgetSnapshot> device_budgets() {
  std::vector<BudgetSnapshot> out;
  if (auto b = cuda_device_budget()) out.push_back(std::move(*b));
  return out;
}

}  // namespace vx::render
