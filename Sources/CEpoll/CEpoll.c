// Headers only (include/CEpoll.h); SwiftPM needs one source file per C target.
#include "CEpoll.h"
