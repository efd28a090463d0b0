// fxlic DPU oracle: stand-in for UniLog's error-code registry. The log shim (UniLog.hpp) prints the
// error id by name, so registering a code only needs to compile.
#pragma once

#include "UniLog/UniLog.hpp"

#define REGISTER_ERROR_CODE(ERRID, ERRDSP, ERRDEBUGINFO) \
  [[maybe_unused]] static const char* const fxlic_oracle_error_##ERRID = ERRDSP
