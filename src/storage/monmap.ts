// Parses `mon dump --format json` (from the `ceph` CLI or the same mon command sent by librados) into
// what krbd's sysfs string needs: the monitors' addresses for the kernel client.

interface MonDumpAddr {
  type?: string;
  addr?: string;
}

interface MonDump {
  fsid?: string;
  mons?: { public_addrs?: { addrvec?: MonDumpAddr[] }; public_addr?: string; addr?: string }[];
}

/**
 * The monitors' msgr v1 addresses ("IP:PORT"), which the kernel client speaks by default
 * (ms_mode=legacy). A monitor with only a v2 address contributes that one (kernels >= 5.11 need
 * ms_mode=crc/secure for it).
 */
export function parseMonDump(json: string): { fsid: string; monAddresses: string[] } {
  const dump = JSON.parse(json) as MonDump;
  const addresses: string[] = [];
  for (const mon of dump.mons ?? []) {
    const vec = mon.public_addrs?.addrvec ?? [];
    const chosen = vec.find((a) => a.type === 'v1') ?? vec.find((a) => a.type === 'v2');
    const addr = chosen?.addr ?? mon.public_addr ?? mon.addr;
    if (addr) addresses.push(addr.replace(/\/\d+$/, ''));
  }
  return { fsid: dump.fsid ?? '', monAddresses: addresses };
}
