// fxlic DPU oracle: our own minimal stand-in for Xilinx UniLog (logging only).
//
// The simulator sources include "UniLog/UniLog.hpp" for their log and check macros. This shim keeps
// their meaning for the oracle: every failed check and every FATAL throws fxlic_oracle::SimError (the
// driver reports the case as rejected by the simulator instead of aborting the whole run); INFO,
// WARNING and DEBUG output is discarded unless FXLIC_DPU_ORACLE_VERBOSE is set in the environment.
// No code here is taken from UniLog.
#pragma once

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fxlic_oracle {

struct SimError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline bool verbose() {
  static const bool v = std::getenv("FXLIC_DPU_ORACLE_VERBOSE") != nullptr;
  return v;
}

// A message that is thrown (fatal) or printed (verbose) when the full expression ends.
class Message {
 public:
  Message(bool fatal, const char* what, const char* file, int line) : fatal_(fatal) {
    s_ << file << ":" << line << ": " << what << ": ";
  }
  ~Message() noexcept(false) {
    if (fatal_) throw SimError(s_.str());
    if (verbose()) std::cerr << s_.str() << std::endl;
  }
  template <typename T>
  Message& operator<<(const T& v) {
    s_ << v;
    return *this;
  }
  Message& operator<<(std::ostream& (*m)(std::ostream&)) {
    s_ << m;
    return *this;
  }

 private:
  bool fatal_;
  std::ostringstream s_;
};

// Lower precedence than <<: turns "Voidify() & Message(...) << a << b" into a void expression.
struct Voidify {
  void operator&(const Message&) {}
};

}  // namespace fxlic_oracle

#define FXLIC_ORACLE_MSG(fatal, what) fxlic_oracle::Message(fatal, what, __FILE__, __LINE__)

#define UNI_LOG_INFO FXLIC_ORACLE_MSG(false, "INFO")
#define UNI_LOG_WARNING FXLIC_ORACLE_MSG(false, "WARNING")
#define UNI_LOG_DEBUG_INFO FXLIC_ORACLE_MSG(false, "DEBUG")
#define UNI_LOG_DEBUG_WARNING FXLIC_ORACLE_MSG(false, "DEBUG WARNING")
#define UNI_LOG_ERROR(ERRID) FXLIC_ORACLE_MSG(false, #ERRID)
#define UNI_LOG_FATAL(ERRID) FXLIC_ORACLE_MSG(true, #ERRID)
#define UNI_LOG_DEBUG_FATAL(ERRID) FXLIC_ORACLE_MSG(true, #ERRID)

// The message names the error id and the source line of the failed check, then the simulator's own text.
#define UNI_LOG_CHECK(condition, ERRID) \
  (condition) ? (void)0 : fxlic_oracle::Voidify() & FXLIC_ORACLE_MSG(true, #ERRID " (check failed)")
#define UNI_LOG_DEBUG_CHECK(condition, ERRID) UNI_LOG_CHECK(condition, ERRID)
#define UNI_LOG_CHECK_EQ(A, B, ERRID) UNI_LOG_CHECK((A) == (B), ERRID)
#define UNI_LOG_CHECK_NE(A, B, ERRID) UNI_LOG_CHECK((A) != (B), ERRID)
#define UNI_LOG_CHECK_LE(A, B, ERRID) UNI_LOG_CHECK((A) <= (B), ERRID)
#define UNI_LOG_CHECK_GE(A, B, ERRID) UNI_LOG_CHECK((A) >= (B), ERRID)
#define UNI_LOG_CHECK_LT(A, B, ERRID) UNI_LOG_CHECK((A) < (B), ERRID)
#define UNI_LOG_CHECK_GT(A, B, ERRID) UNI_LOG_CHECK((A) > (B), ERRID)

// Only used to decorate messages.
#define UNI_LOG_VALUES(...) ""
