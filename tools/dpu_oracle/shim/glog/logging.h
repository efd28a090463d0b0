// fxlic DPU oracle: the simulator includes <glog/logging.h>; of glog it uses only CHECK (in
// ElewInit.cpp). CHECK is mapped onto the UniLog shim, so a failed check throws like the others.
#pragma once

#include "UniLog/UniLog.hpp"

#ifndef CHECK
#define CHECK(condition) UNI_LOG_CHECK(condition, GLOG_CHECK)
#endif
