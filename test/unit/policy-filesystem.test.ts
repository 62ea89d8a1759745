// The rules of a tenant's filesystem command (src/policy/filesystem.ts): what upload accepts, what
// volplugin runs, and that nothing of it can reach a shell or name another file or device.
import { describe, expect, it } from 'vitest';
import { DEFAULT_MKFS_ALLOW, formatArgv, formatCommandProblem, mkfsProgramProblem } from '../../src/policy/filesystem.js';

describe('a filesystem command', () => {
  it.each([
    ['mkfs.ext4 -m0 %', { program: 'mkfs.ext4', args: ['-m0', '/dev/loop3'] }],
    ['mkfs.ext4 -q -m0 %', { program: 'mkfs.ext4', args: ['-q', '-m0', '/dev/loop3'] }],
    ['  mkfs.xfs   -q  -f %  ', { program: 'mkfs.xfs', args: ['-q', '-f', '/dev/loop3'] }],
    ['mkfs.btrfs -q -L data %', { program: 'mkfs.btrfs', args: ['-q', '-L', 'data', '/dev/loop3'] }],
    ['mkfs.ext4 -O ^has_journal -E lazy_itable_init=0,stride=100%% %', { program: 'mkfs.ext4', args: ['-O', '^has_journal', '-E', 'lazy_itable_init=0,stride=100%', '/dev/loop3'] }],
    ['mkfs.ext4 -t ext2 -L vol@1+x:y %', { program: 'mkfs.ext4', args: ['-t', 'ext2', '-L', 'vol@1+x:y', '/dev/loop3'] }],
  ])('%j runs as an argument vector', (command, argv) => {
    expect(formatCommandProblem(command)).toBeNull();
    expect(formatArgv(command, '/dev/loop3', DEFAULT_MKFS_ALLOW)).toEqual(argv);
  });

  it('passes a device path with shell syntax in it through as one argument, untouched', () => {
    expect(formatArgv('mkfs.ext4 %', "/dev/we ird';$(x)", DEFAULT_MKFS_ALLOW).args).toEqual(["/dev/we ird';$(x)"]);
  });

  it.each([
    // shell syntax, one character of each kind
    ['mkfs.ext4 %; rm -rf /', /contains ";"/],
    ['mkfs.ext4 % | tee x', /contains "\|"/],
    ['mkfs.ext4 % && reboot', /contains "&"/],
    ['mkfs.ext4 $DEV', /contains "\$"/],
    ['mkfs.ext4 `id` %', /contains "`"/],
    ['mkfs.ext4 % > x', /contains ">"/],
    ['mkfs.ext4 < x %', /contains "<"/],
    ['mkfs.ext4 $(id) %', /contains "\$"/],
    ['mkfs.ext4 (x) %', /contains "\("/],
    ['mkfs.ext4 {a,b} %', /contains "\{"/],
    ["mkfs.ext4 -L 'a b' %", /contains "'"/],
    ['mkfs.ext4 -L "a" %', /contains "\\""/],
    ['mkfs.ext4 -L a\\ b %', /contains "\\\\"/],
    ['mkfs.ext4 -L * %', /contains "\*"/],
    ['mkfs.ext4 -L ? %', /contains "\?"/],
    ['mkfs.ext4 -L [a] %', /contains "\["/],
    ['mkfs.ext4 -L ~ %', /contains "~"/],
    ['mkfs.ext4 -L ! %', /contains "!"/],
    ['mkfs.ext4 % #x', /contains "#"/],
    ['mkfs.ext4 %\nreboot', /contains a newline/],
    ['mkfs.ext4\t%', /contains a tab/],
    ['mkfs.ext4 \u0000%', /control character U\+0000/],
    ['mkfs.ext4 -L é %', /contains "é"/],
    // other files and devices of the host
    ['mkfs.btrfs -f /dev/sda %', /contains "\/"/],
    ['mkfs.ext4 -d /etc %', /contains "\/"/],
    ['mkfs.ext4 -d .. %', /"\.\." could name a directory/],
    ['mkfs.ext4 -J device=UUID=1234 %', /UUID= and LABEL= name other devices/],
    ['mkfs.ext4 -J device=label=root %', /UUID= and LABEL= name other devices/],
    // the program
    ['sh -c mkfs %', /runs "sh", which is not an allowed program; allowed programs: mkfs.ext4, mkfs.xfs, mkfs.btrfs/],
    ['mkfs.ext2 %', /runs "mkfs.ext2", which is not an allowed program/],
    ['/sbin/mkfs.ext4 %', /contains "\/"/],
    ['% -q', /first word must be the program/],
    // the device
    ['mkfs.ext4 -q', /has no "%" where the device goes/],
    ['mkfs.ext4 100%%', /has no "%" where the device goes/],
    ['', /is empty/],
    ['   ', /is empty/],
    [`mkfs.ext4 ${'-q '.repeat(400)}%`, /longer than 1024 characters/],
  ])('%j is refused: %s', (command, reason) => {
    const problem = formatCommandProblem(command);
    expect(problem).toMatch(reason);
    expect(problem).toContain(`the command ${JSON.stringify(command)}`);
    expect(() => formatArgv(command, '/dev/loop3', DEFAULT_MKFS_ALLOW)).toThrow(reason);
  });

  it('is checked against the allowlist given: the host may allow fewer or other programs', () => {
    expect(formatCommandProblem('mkfs.xfs %', ['mkfs.ext4'])).toMatch(/"mkfs.xfs", which is not an allowed program; allowed programs: mkfs.ext4$/);
    expect(() => formatArgv('mkfs.xfs %', '/dev/loop3', ['mkfs.ext4'])).toThrow(/not an allowed program; allowed programs: mkfs.ext4/);
    expect(formatArgv('mkfs.ext2 -q %', '/dev/loop3', ['mkfs.ext2']).program).toBe('mkfs.ext2');
    // null: every rule but the allowlist (the syntax is the same everywhere)
    expect(formatCommandProblem('mkfs.f2fs %', null)).toBeNull();
    expect(formatCommandProblem('mkfs.f2fs %; id', null)).toMatch(/contains ";"/);
  });

  it('allowlist entries are program names, never paths', () => {
    expect(mkfsProgramProblem('mkfs.ext4')).toBeNull();
    expect(mkfsProgramProblem('/sbin/mkfs.ext4')).toMatch(/not a program name/);
    expect(mkfsProgramProblem('mkfs ext4')).toMatch(/not a program name/);
    expect(mkfsProgramProblem('')).toMatch(/not a program name/);
  });
});
