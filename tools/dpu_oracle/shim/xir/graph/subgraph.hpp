// fxlic DPU oracle: stand-in for xir::Subgraph. Only DDR::Initial(const xir::Subgraph*) mentions it,
// which the oracle never calls (it writes the on-chip banks directly); calling it throws.
#pragma once

#include <stdexcept>
#include <string>

namespace xir {
class Subgraph {
 public:
  template <typename T>
  T get_attr(const std::string& name) const {
    throw std::logic_error("fxlic DPU oracle: xir::Subgraph is not available (" + name + ")");
  }
  bool has_attr(const std::string& name) const {
    throw std::logic_error("fxlic DPU oracle: xir::Subgraph is not available (" + name + ")");
  }
};
}  // namespace xir
