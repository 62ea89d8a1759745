// A device that cannot be read when volplugin mounts it (a flaky path, an OSD that does not
// answer): the test hook VOLPLUGIN_FAILPOINTS=read-error-at-mount makes volplugin's pre-format
// check and filesystem probe see the device as unreadable. Production never sets it.

export const READ_ERROR_AT_MOUNT: Record<string, string> = { VOLPLUGIN_FAILPOINTS: 'read-error-at-mount' };
