"""sshd.py - an SSH server of the test's own, for reaching a mount "from
another host": Debian's sshd (openssh-server) listening on 127.0.0.1 on a
free port, with a throwaway host key and a throwaway user key for root,
started inside the test's namespaces (its sessions see the test's private
mount and System V segments), and the client commands (ssh, scp, sftp,
rsync, sshfs) set up to use it through one ssh_config of their own.

    with SSHServer(workdir) as host:
        host.check(host.scp('host:/path/X.fits', 'here.fits'))
        host.check(host.sftp('ls -l /path'))
        host.check(host.rsync('here.fits', 'host:/path/'))
        mnt = host.sshfs('/path', '/tmp/local-mount')    # unmounted on exit

"host" in a remote argument is this server. Nothing outside the work
directory is touched but /run/sshd, the directory sshd insists on: when the
machine has none, a tmpfs is mounted on /run in the test's private mount
namespace to hold it (the tests run under unshare --mount)."""

import os
import shlex
import socket
import subprocess
import time

SSHD = '/usr/sbin/sshd'
PRIVSEP_DIR = '/run/sshd'   # compiled into Debian's sshd
HOST = 'host'
START_TIMEOUT = 10.0


def free_port():
    """A TCP port of 127.0.0.1 nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def descendants(pid):
    """The PIDs of PID's children, their children, and so on."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                ppid = int(f.read().rpartition(')')[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class SSHServer:
    """sshd on 127.0.0.1 for the test, and its clients."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, 'ssh')
        os.makedirs(self.dir, mode=0o700)
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.dir, 'sshd.log')
        self.mounts = []
        self.config = os.path.join(self.dir, 'ssh_config')

    # -- server ----------------------------------------------------------

    def _keys(self):
        for name in ('host_key', 'user_key'):
            subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', f'shmfs-{name}',
                            '-f', os.path.join(self.dir, name)], check=True,
                           capture_output=True)
        with open(os.path.join(self.dir, 'user_key.pub')) as f, \
                open(os.path.join(self.dir, 'authorized_keys'), 'w') as out:
            out.write(f.read())

    def _privsep_dir(self):
        if os.path.isdir(PRIVSEP_DIR):
            return
        if os.readlink('/proc/self/ns/mnt') == os.readlink(f'/proc/{os.getppid()}/ns/mnt'):
            raise RuntimeError(f'{PRIVSEP_DIR} is missing and this is not a private mount '
                               'namespace: run under unshare --mount')
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'shmfs-test-run', '/run'],
                       check=True, capture_output=True)
        os.mkdir(PRIVSEP_DIR, 0o755)

    def _write_configs(self):
        d = self.dir
        with open(os.path.join(d, 'sshd_config'), 'w') as f:
            f.write(f'''ListenAddress 127.0.0.1
Port {self.port}
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
LogLevel VERBOSE
Subsystem sftp internal-sftp
''')
        with open(os.path.join(d, 'host_key.pub')) as f:
            host_key = ' '.join(f.read().split()[:2])
        with open(os.path.join(d, 'known_hosts'), 'w') as f:
            f.write(f'[127.0.0.1]:{self.port} {host_key}\n')
        with open(self.config, 'w') as f:
            f.write(f'''Host {HOST}
  HostName 127.0.0.1
  Port {self.port}
  User root
  IdentityFile {d}/user_key
  IdentitiesOnly yes
  UserKnownHostsFile {d}/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  HostKeyAlias [127.0.0.1]:{self.port}
  BatchMode yes
  LogLevel ERROR
''')

    def start(self):
        self._keys()
        self._privsep_dir()
        for attempt in range(5):   # another process may take the port first
            self.port = free_port()
            self._write_configs()
            with open(self.log_path, 'ab') as log:
                self.proc = subprocess.Popen([SSHD, '-D', '-e', '-f',
                                              os.path.join(self.dir, 'sshd_config')],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            if self._wait_listening():
                break
            self.stop()
        else:
            raise RuntimeError(f'sshd did not start:\n{self.log()}')
        r = self.ssh('true')
        if r.returncode != 0:
            raise RuntimeError(f'ssh to the test sshd fails: {r.stderr}\n{self.log()}')
        return self

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if f'Server listening on 127.0.0.1 port {self.port}' in self.log():
                return True
            time.sleep(0.05)
        return False

    def log(self):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def stop(self):
        while self.mounts:
            mnt = self.mounts.pop()
            if subprocess.run(['fusermount3', '-u', mnt], capture_output=True).returncode:
                subprocess.run(['umount', '-l', mnt], capture_output=True)
        if self.proc and self.proc.poll() is None:
            # The sessions too (sshd's children and theirs), which may hold
            # files of the mount open: gone before stop() returns.
            pids = [self.proc.pid] + descendants(self.proc.pid)
            for pid in pids:
                try:
                    os.kill(pid, 15)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=10)
            deadline = time.monotonic() + 10
            while any(os.path.exists(f'/proc/{pid}') for pid in pids[1:]):
                if time.monotonic() > deadline:
                    for pid in pids[1:]:
                        try:
                            os.kill(pid, 9)
                        except ProcessLookupError:
                            pass
                time.sleep(0.02)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- clients ---------------------------------------------------------

    def _run(self, argv, timeout=120, **kw):
        env = dict(os.environ, LC_ALL='C', LANG='C')
        return subprocess.run(argv, capture_output=True, timeout=timeout, env=env, **kw)

    def ssh(self, command, **kw):
        """Run COMMAND (a shell command line) on the host."""
        return self._run(['ssh', '-F', self.config, HOST, command], text=True, **kw)

    def scp(self, *args, **kw):
        """scp ARGS ("host:PATH" for the server's files), SFTP protocol (the
        default since OpenSSH 9.0)."""
        return self._run(['scp', '-F', self.config, '-q', *args], text=True, **kw)

    def sftp(self, batch, **kw):
        """sftp running the commands of BATCH (text, one per line); stdout
        holds what they print."""
        path = os.path.join(self.dir, 'batch')
        with open(path, 'w') as f:
            f.write(batch.rstrip('\n') + '\n')
        return self._run(['sftp', '-F', self.config, '-q', '-b', path, HOST], text=True, **kw)

    def rsync(self, *args, **kw):
        """rsync ARGS over ssh to the host (rsync on both ends)."""
        return self._run(['rsync', '-e', f'ssh -F {shlex.quote(self.config)}', *args],
                         text=True, **kw)

    def sshfs(self, remote, mountpoint, *options):
        """Mount the host's REMOTE directory at MOUNTPOINT with sshfs
        (OPTIONS: more -o options); unmounted by stop()."""
        opts = ['-o', f'ssh_command=ssh -F {self.config}']
        for o in options:
            opts += ['-o', o]
        r = self._run(['sshfs', *opts, f'{HOST}:{remote}', mountpoint], text=True)
        if r.returncode != 0:
            raise RuntimeError(f'sshfs failed: {r.stderr}\n{self.log()}')
        self.mounts.append(mountpoint)
        return mountpoint

    @staticmethod
    def check(r):
        """R (a CompletedProcess) succeeded; returns its stdout."""
        if r.returncode != 0:
            raise AssertionError(f'{" ".join(map(str, r.args))} failed ({r.returncode}):\n'
                                 f'{r.stdout}\n{r.stderr}')
        return r.stdout
