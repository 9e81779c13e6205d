#!/bin/sh
# Guest job of the plan tests: sh plans_job.sh STEP...  (steps below). Each step writes its stdout
# to $NETLAT_VM_OUT/<step>.out, its stderr to <step>.err (tail echoed) and its exit status to
# <step>.rc; a failed step does not stop the next one: the host-side tests say which failed.
out=$NETLAT_VM_OUT

step() {
    name=$1; shift
    echo "== $name: $*"
    start=$(date +%s)
    "$@" >"$out/$name.out" 2>"$out/$name.err"
    rc=$?
    echo "$rc" >"$out/$name.rc"
    tail -n 15 "$out/$name.err"
    echo "== $name: exit $rc after $(( $(date +%s) - start )) s"
}

uname -r >"$out/kernel.txt"
for name in "$@"; do
    case $name in
        plan-kprobe|plan-tracepoint|plan-fentry)
            step "$name" python3 tests/vm/guest/plan_checks.py --probes "${name#plan-}" ;;
        doctor)
            step doctor python3 -m tui doctor --json ;;
        cli-auto|cli-kprobe|cli-fentry)
            step "$name" python3 -m tui --headless --probes "${name#cli-}" --duration 3 --json --workload loopback ;;
        cli-bad-filter)
            step cli-bad-filter python3 -m tui --headless --probes kprobe --duration 1 --json --port 70000 ;;
        *)
            echo "plans_job.sh: unknown step $name" >&2; exit 2 ;;
    esac
done
# The guest must be clean afterwards: no kprobe registered, no BPF program loaded.
cat /sys/kernel/debug/kprobes/list >"$out/kprobes-at-end.txt"
bpftool -j prog show >"$out/bpf-progs-at-end.json"
exit 0
