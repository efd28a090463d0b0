// fxlic DPU oracle: stand-in for xir::Tensor (included by the simulator's DDR.cpp, not used there).
#pragma once

namespace xir {
class Tensor;
}  // namespace xir
