# shellcheck shell=sh
# tests/e2e/stages/aa_scope.sh: sourced by a stage (after common.sh) on a host
# VM where AppArmor confines libvirt; defines aa_scope, which checks the
# restore socket's layout and the AppArmor rule of restore sockets
# (/etc/apparmor.d/abstractions/libvirt-qemu.d/vmupdate), and reports step
# aa-scope.
#
# Two profiles named as libvirt names a domain's (libvirt-<UUID>: libvirt's
# abstraction, hence vmupdate's rule, and perl for the test client), the QEMU
# user in each. The layout the hook makes: qmp/libvirt-<B>.<hex>/ root's, 0711,
# and in it root's listening socket, 0660 root:libvirt-qemu (QEMU connects to
# it; the helper hangs up on any peer but the domain's QEMU, which
# RestoreHelper.AnotherQemuConnectingFirstIsHungUpOn checks). Asserted: B
# connects to its own attempt's socket; A can neither create nor remove a
# socket there. The rule itself, in directories the QEMU user owns (the old
# layout, so that the denial is AppArmor's and not the directory's mode): A
# may create a socket in its own attempt but neither in B's nor in one named
# as before the rule was scoped (qmp/<hex>), where the unconfined QEMU user
# may. Every check runs, then all that differ fail the step together.
# Reported, not asserted: whether A can connect to B's socket (a kernel
# without AppArmor's af_unix mediation, mainline before 6.17 and so Debian's
# 6.1 and 6.12, checks no file rule at connect), whether A can read the
# command line of the running guest's QEMU (GUEST) and the denials the kernel
# logged.

# as_domain PROFILE|- OP PATH [HOLD]: as the QEMU user, confined by PROFILE
# ("-": unconfined), OP (bind, connect, unlink) on the unix socket PATH, or
# read (a line of the file PATH); bind listens HOLD seconds. Exit 0 done, else the errno (13: EACCES). perl-base
# only: every Debian root has it.
as_domain() {
  _p=$1; shift
  if [ "$_p" = - ]; then set -- perl -e "$AS_QEMU_PL" "$@"
  else set -- aa-exec -p "$_p" -- perl -e "$AS_QEMU_PL" "$@"; fi
  QUID=$(id -u libvirt-qemu) QGID=$(id -g libvirt-qemu) "$@"
}
# shellcheck disable=SC2016 # perl's variables
AS_QEMU_PL='$) = "$ENV{QGID} $ENV{QGID}"; $( = $ENV{QGID}; ($<, $>) = ($ENV{QUID}, $ENV{QUID});
$< == $ENV{QUID} && $> == $ENV{QUID} or exit 103;
my ($op, $path, $hold) = @ARGV; my $addr = pack("S Z108", 1, $path);
if ($op eq "unlink") { unlink($path) or exit($! + 0); exit 0 }
if ($op eq "read") { open(my $f, "<", $path) or exit($! + 0); defined(<$f>) or exit 104; exit 0 }
socket(S, 1, 1, 0) or exit 100;
if ($op eq "connect") { connect(S, $addr) or exit($! + 0); exit 0 }
bind(S, $addr) or exit($! + 0); listen(S, 8) or exit 101; sleep($hold || 0); exit 0'
# shellcheck disable=SC2016 # perl's variables
# Root's listener, as the hook makes it: PATH, group GID, mode 0660, HOLD seconds.
ROOT_LISTEN_PL='my ($path, $gid, $hold) = @ARGV; socket(S, 1, 1, 0) or exit 100;
bind(S, pack("S Z108", 1, $path)) or exit($! + 0); chown(0, $gid, $path) or exit 102;
chmod(0660, $path) or exit 102; listen(S, 8) or exit 101; sleep($hold); exit 0'
# expect_errno WANT WHAT PROFILE OP PATH: as_domain; a different exit is added
# to $aa_wrong
expect_errno() {
  _want=$1 _what=$2; shift 2
  as_domain "$@"; _rc=$?
  echo "aa-scope: $_what: exit $_rc (want $_want)"
  [ "$_rc" = "$_want" ] || aa_wrong="$aa_wrong; $_what: exit $_rc, want $_want"
}
aa_scope() {
  aa_wrong=""
  qmp=/run/vmupdate/qmp
  install -d -m 0711 /run/vmupdate "$qmp" || fail aa-scope "make $qmp"
  a=$(cat /proc/sys/kernel/random/uuid) b=$(cat /proc/sys/kernel/random/uuid)
  for u in "$a" "$b"; do
    printf '#include <tunables/global>\nprofile libvirt-%s flags=(attach_disconnected) {\n  #include <abstractions/libvirt-qemu>\n  #include <abstractions/perl>\n}\n' "$u" > "/tmp/aa-libvirt-$u"
    run apparmor_parser -r "/tmp/aa-libvirt-$u" || fail aa-scope "load profile libvirt-$u"
  done
  dir_b=$qmp/libvirt-$b.0123456789abcdef dir_b2=$qmp/libvirt-$b.fedcba9876543210
  dir_a=$qmp/libvirt-$a.0123456789abcdef dir_old=$qmp/0123456789abcdef
  for d in "$dir_b2" "$dir_a" "$dir_old"; do
    install -d -m 0700 -o libvirt-qemu -g libvirt-qemu "$d" || fail aa-scope "make $d"
  done
  install -d -m 0711 "$dir_b" || fail aa-scope "make $dir_b"
  # The rule, in QEMU-user directories: A's checks against what the old rule
  # let every domain do.
  expect_errno 13 "A creates a socket in an old-style attempt" "libvirt-$a" bind "$dir_old/qmp.sock"
  rm -f "$dir_old/qmp.sock"
  expect_errno 0 "the unconfined QEMU user creates one there" - bind "$dir_old/qmp.sock"
  expect_errno 13 "A removes the old-style attempt's socket" "libvirt-$a" unlink "$dir_old/qmp.sock"
  expect_errno 13 "A creates a socket in B's attempt" "libvirt-$a" bind "$dir_b2/qmp.sock"
  rm -f "$dir_b2/qmp.sock"
  expect_errno 0 "the unconfined QEMU user creates one there" - bind "$dir_b2/qmp.sock"
  expect_errno 0 "A creates a socket in its own attempt" "libvirt-$a" bind "$dir_a/qmp.sock"
  # The layout: root listens on B's socket, as the hook does for the helper.
  perl -e "$ROOT_LISTEN_PL" "$dir_b/qmp.sock" "$(id -g libvirt-qemu)" 60 & listener=$!
  i=0
  until [ -S "$dir_b/qmp.sock" ] && [ "$(stat -c %a "$dir_b/qmp.sock")" = 660 ]; do
    kill -0 $listener 2>/dev/null || fail aa-scope "root cannot listen on $dir_b/qmp.sock"
    i=$((i+1)); [ $i -lt 100 ] || fail aa-scope "B's socket did not appear"; sleep 0.1
  done
  expect_errno 13 "A creates a socket in B's (root's) attempt" "libvirt-$a" bind "$dir_b/other.sock"
  expect_errno 13 "A removes B's socket" "libvirt-$a" unlink "$dir_b/qmp.sock"
  [ -S "$dir_b/qmp.sock" ] || aa_wrong="$aa_wrong; B's socket is gone"
  expect_errno 0 "B connects to its own socket" "libvirt-$b" connect "$dir_b/qmp.sock"
  as_domain "libvirt-$a" connect "$dir_b/qmp.sock"; connect_rc=$?
  # Where B's socket is, a restoring QEMU's command line says (-chardev ...).
  qemu_pid=$(cat "/run/libvirt/qemu/$GUEST.pid" 2>/dev/null)
  as_domain "libvirt-$a" read "/proc/$qemu_pid/cmdline"; cmdline_rc=$?
  kill $listener 2>/dev/null; wait $listener 2>/dev/null
  af_unix=no
  [ -n "$(find /sys/kernel/security/apparmor/features -name af_unix 2>/dev/null)" ] && af_unix=yes
  denials=$(dmesg | grep -c "apparmor=\"DENIED\".*profile=\"libvirt-$a\".*name=\"$qmp/")
  rm -rf "$dir_b" "$dir_b2" "$dir_a" "$dir_old"
  for u in "$a" "$b"; do apparmor_parser -R "/tmp/aa-libvirt-$u" > /dev/null 2>&1; done
  [ -z "$aa_wrong" ] || fail aa-scope "A=libvirt-$a B=libvirt-$b${aa_wrong}"
  ok aa-scope "A=libvirt-$a B=libvirt-$b: B connects to root's socket of its attempt; A may not create or remove a socket there, nor in B's or an old-style QEMU-user attempt (EACCES), but may in its own; kernel-logged denials of A: $denials; connect A->B: exit $connect_rc (the helper hangs up on a peer that is not the domain's QEMU), kernel af_unix mediation: $af_unix; A reads the guest QEMU's command line: exit $cmdline_rc"
}
