// Writes to kernel interface files (sysfs, cgroupfs) off the JS thread: krbd's
// /sys/bus/rbd/add_single_major and remove_single_major, blkio.throttle.* and io.max. Such a write
// must be one write(2) of the whole string; adding an rbd device blocks until the kernel has
// mapped it.
#pragma once

#include <napi.h>

namespace volplugin {

// writeFile(path, data): Promise<void>
Napi::Value WriteFile(const Napi::CallbackInfo& info);

}  // namespace volplugin
