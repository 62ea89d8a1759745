// The managed plugin's docker/plugin/config.json against volplugin's own command line: the fixed
// flags of its entrypoint and the defaults of its settable environment must give a configuration
// that serves dockerd where config.json says (socket, propagated mount) and reads every setting it
// offers. A renamed flag or variable breaks the plugin only on a real engine otherwise.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCommand, parseConfig, socketPath } from '../../src/plugin/config.js';

interface PluginConfigJson {
  interface: { types: string[]; socket: string };
  entrypoint: string[];
  propagatedMount: string;
  env: Array<{ name: string; value: string; settable?: string[] }>;
  mounts: Array<{ name: string; destination: string; settable?: string[] }>;
}

const config = JSON.parse(readFileSync(new URL('../../docker/plugin/config.json', import.meta.url), 'utf8')) as PluginConfigJson;
const flags = config.entrypoint.slice(config.entrypoint.indexOf('volplugin') + 1);
const env = Object.fromEntries(config.env.map((e) => [e.name, e.value]));

describe('the managed plugin config.json', () => {
  it('starts volplugin through the image entrypoint with flags volplugin accepts', () => {
    expect(config.entrypoint.slice(0, 6)).toEqual(['/usr/bin/tini', '-s', '-g', '--', '/usr/local/bin/volplugin-entrypoint', 'volplugin']);
    expect(() => parseConfig(flags, env)).not.toThrow();
  });

  it('serves the socket dockerd connects to, and mounts volumes inside the propagated mount', () => {
    const parsed = parseConfig(flags, env);
    expect(config.interface.types).toEqual(['docker.volumedriver/1.0']);
    // dockerd binds /run/docker/plugins/<id>/ at /run/docker/plugins inside and dials <that>/<socket>.
    expect(socketPath(parsed)).toBe(path.join('/run/docker/plugins', config.interface.socket));
    expect(parsed.mountRoot).toBe(config.propagatedMount);
  });

  it('its default settings reach the configuration', () => {
    expect(parseConfig(flags, env)).toMatchObject({
      master: env.VOLPLUGIN_MASTER,
      tokenFile: env.VOLPLUGIN_TOKEN_FILE,
      etcd: [env.VOLPLUGIN_ETCD],
      cephConf: env.CEPH_CONF,
      cephId: env.VOLPLUGIN_CEPH_ID,
      cephKeyring: env.VOLPLUGIN_CEPH_KEYRING,
      docker: env.DOCKER_HOST,
      tlsCa: null,
      etcdSecurity: { ca: null, cert: null, key: null, user: null, passwordFile: null },
    });
    // DOCKER_HOST=none turns the Docker API off, as the docs say.
    expect(parseConfig(flags, { ...env, DOCKER_HOST: 'none' }).docker).toBeNull();
  });

  it('every settable variable is one volplugin reads (named in --help)', () => {
    const help = buildCommand({}).helpInformation();
    const settable = config.env.filter((e) => e.settable?.includes('value')).map((e) => e.name);
    expect(settable.length).toBeGreaterThan(10);
    for (const name of settable) expect(help, name).toContain(name);
  });

  it('the files its defaults name live in the mounts that carry them', () => {
    const at = (name: string) => config.mounts.find((m) => m.name === name)!.destination;
    expect(env.VOLPLUGIN_TOKEN_FILE!.startsWith(`${at('config')}/`)).toBe(true);
    expect(env.CEPH_CONF!.startsWith(`${at('ceph')}/`)).toBe(true);
    expect(env.VOLPLUGIN_CEPH_KEYRING!.startsWith(`${at('ceph')}/`)).toBe(true);
    expect(env.DOCKER_HOST).toBe(`unix://${at('docker-socket')}`);
    expect(parseConfig(flags, env).stateDir).toBe(at('state'));
  });
});
