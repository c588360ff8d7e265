#!/usr/bin/env bash
# Builds the .deb (packaging/build-deb.sh), installs it on this machine with
# dpkg, checks what a sysadmin would check, then removes and purges it and
# checks that nothing is left behind. Run as root on a machine without a
# real gleaner installation (it refuses otherwise: purge deletes
# /var/lib/gleaner).
#
#   bash packaging/deb-test.sh                          # package of the release build
#   GLEANER_DEB_PROFILE=dev bash packaging/deb-test.sh  # of the debug build (CI)
#
# What it checks:
#   build     the maintainer scripts parse
#   install   the files are where Debian expects them; the conffile is the
#             example config; `gleaner --version`, `gleaner check --config
#             /etc/gleaner/gleaner.toml`, `man gleaner` and the completions
#             work; the unit is enabled; `gleaner run` on the packaged
#             config idles politely (no feeds) and stops on SIGTERM
#   remove    (dpkg -r) the binary goes, the conffile and data stay (policy)
#   purge     (dpkg --purge) the conffile, /etc/gleaner, the unit's
#             enablement and mask, and /var/lib/gleaner go: no path containing
#             "gleaner" is left under /etc, /usr or /var/lib that was not
#             there before
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
say() { echo "deb-test: $*"; }
fail() {
    echo "deb-test: FAIL: $*" >&2
    exit 1
}
# check DESCRIPTION COMMAND...: run COMMAND; fail with DESCRIPTION unless it succeeds.
check() {
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        fail "$what"
    fi
}

[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
command -v dpkg >/dev/null || fail "needs dpkg"
if dpkg-query -W gleaner >/dev/null 2>&1 ||
    [ -e /etc/gleaner ] || [ -e /var/lib/gleaner ] || [ -e /var/lib/private/gleaner ] ||
    [ -e /usr/bin/gleaner ]; then
    fail "gleaner is (or was) installed here (package, /etc/gleaner, /var/lib/gleaner or /usr/bin/gleaner exists); not touching it"
fi

leftovers() {
    find /etc /usr /var/lib -xdev \( -path /var/lib/dpkg -o -path /var/lib/apt \) -prune \
        -o -iname '*gleaner*' -print 2>/dev/null | sort
}
before=$(leftovers)

t0=$(date +%s)
deb=$(bash packaging/build-deb.sh | tail -n 1)
t1=$(date +%s)
say "built $deb in $((t1 - t0))s"

# --- build: the maintainer scripts (cargo-deb's systemd snippets merged
# into packaging/debian/) parse; a broken postrm strands the package.
control=$(mktemp -d)
dpkg-deb -e "$deb" "$control"
for script in "$control"/preinst "$control"/postinst "$control"/prerm "$control"/postrm; do
    [ -f "$script" ] || continue
    check "$(basename "$script") does not parse" sh -n "$script"
done
check "postrm does not remove /var/lib/gleaner on purge" grep -q 'rm -rf /var/lib/gleaner' "$control/postrm"
rm -rf "$control"

installed=0
cleanup() {
    if [ "$installed" = 1 ]; then
        say "cleaning up after a failure: dpkg --purge gleaner"
        dpkg --purge gleaner || say "purge failed: remove it by hand (dpkg --purge gleaner)"
    fi
}
trap cleanup EXIT

# --- install -----------------------------------------------------------
installed=1
dpkg -i "$deb"
check "after dpkg -i: status is not 'install ok installed'" \
    test "$(dpkg-query -W -f='${Status}' gleaner)" = "install ok installed"

for f in /usr/bin/gleaner \
    /etc/gleaner/gleaner.toml \
    /usr/lib/systemd/system/gleaner.service \
    /usr/share/man/man1/gleaner.1.gz \
    /usr/share/man/man1/gleaner-run.1.gz \
    /usr/share/man/man1/gleaner-init.1.gz \
    /usr/share/bash-completion/completions/gleaner \
    /usr/share/zsh/vendor-completions/_gleaner \
    /usr/share/fish/vendor_completions.d/gleaner.fish \
    /usr/share/doc/gleaner/copyright \
    /usr/share/doc/gleaner/README.md \
    /usr/share/doc/gleaner/gleaner.example.toml; do
    check "missing $f" test -f "$f"
done
is_conffile() { dpkg-query -W -f='${Conffiles}\n' gleaner | grep -q '^ /etc/gleaner/gleaner.toml '; }
check "/etc/gleaner/gleaner.toml is not a conffile" is_conffile
check "/etc/gleaner/gleaner.toml differs from config/gleaner.example.toml" \
    cmp -s /etc/gleaner/gleaner.toml config/gleaner.example.toml
check "conffile mode is not 644" test "$(stat -c %a /etc/gleaner/gleaner.toml)" = 644

version=$(/usr/bin/gleaner --version)
want="gleaner $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
check "gleaner --version: '$version', want '$want'" test "$version" = "$want"
say "$version"

check_err=$(mktemp)
if ! /usr/bin/gleaner check --config /etc/gleaner/gleaner.toml >/dev/null 2>"$check_err"; then
    fail "gleaner check --config /etc/gleaner/gleaner.toml: $(cat "$check_err")"
fi
check "gleaner check says nothing about the missing feeds" grep -q 'no \[\[feed\]\] tables yet' "$check_err"
rm -f "$check_err"
say "gleaner check --config /etc/gleaner/gleaner.toml: ok"

# Man pages and completions work as installed.
man_renders() { MANWIDTH=80 man gleaner 2>/dev/null | grep -q 'EXIT STATUS'; }
man_found() { man -w gleaner >/dev/null 2>&1; }
check "man -w gleaner finds nothing" man_found
check "man gleaner does not render" man_renders
check "bash completion does not load" \
    bash -c 'source /usr/share/bash-completion/completions/gleaner && complete -p gleaner >/dev/null'
check "zsh completion looks wrong" grep -q '#compdef gleaner' /usr/share/zsh/vendor-completions/_gleaner
check "fish completion looks wrong" grep -q 'complete -c gleaner' /usr/share/fish/vendor_completions.d/gleaner.fish

# The unit is enabled (and started where systemd runs; not in a container
# without it, where deb-systemd-invoke skips the start).
check "gleaner.service is not enabled" test -L /etc/systemd/system/multi-user.target.wants/gleaner.service
if command -v systemd-analyze >/dev/null; then
    verify_out=$(systemd-analyze verify /usr/lib/systemd/system/gleaner.service 2>&1 || true)
    # Only the unit's own diagnostics count (this machine may not run systemd).
    if echo "$verify_out" | grep 'gleaner.service:' | grep -vi 'not running'; then
        fail "systemd-analyze verify complains about gleaner.service"
    fi
fi

# What the started service does with the packaged config: idles, says why,
# stops cleanly on SIGTERM. (Run by hand as root it creates /var/lib/gleaner
# as a plain directory; purge must remove that too.)
run_err=$(mktemp)
set +e
timeout --signal=TERM 3 /usr/bin/gleaner run --config /etc/gleaner/gleaner.toml 2>"$run_err"
rc=$?
set -e
[ "$rc" = 124 ] || fail "gleaner run with no feeds exited $rc instead of idling: $(cat "$run_err")"
check "gleaner run with no feeds does not say it is idling: $(cat "$run_err")" grep -q 'idling' "$run_err"
rm -f "$run_err"
check "gleaner run did not create /var/lib/gleaner/state" test -d /var/lib/gleaner/state
say "gleaner run with no feeds idles and stops on SIGTERM"

# --- remove: binary gone, conffile and data kept ------------------------
dpkg -r gleaner
check "after dpkg -r: status is not 'deinstall ok config-files'" \
    test "$(dpkg-query -W -f='${Status}' gleaner)" = "deinstall ok config-files"
check "dpkg -r left /usr/bin/gleaner" test ! -e /usr/bin/gleaner
check "dpkg -r removed the conffile (policy: keep it)" test -f /etc/gleaner/gleaner.toml
check "dpkg -r removed /var/lib/gleaner (only purge should)" test -d /var/lib/gleaner
say "dpkg -r: binary gone, conffile and /var/lib/gleaner kept"

# --- purge: nothing left -----------------------------------------------
dpkg --purge gleaner
installed=0
check "dpkg --purge left the package known to dpkg" bash -c '! dpkg-query -W gleaner >/dev/null 2>&1'
after=$(leftovers)
if [ "$before" != "$after" ]; then
    diff <(echo "$before") <(echo "$after") >&2 || true
    fail "dpkg --purge left files behind (above)"
fi
passed=$((passed + 1))
say "dpkg --purge: nothing left under /etc, /usr, /var/lib"
say "done in $(($(date +%s) - t0))s"
# A closing line CI reads as a test count.
echo "deb-test: $passed passed, 0 failed"
