#!/bin/sh
# Guest job of tests/vm/test_vm_plans.py: each step writes its files to $NETLAT_VM_OUT and its exit
# status to <step>.rc; a failed step does not stop the next one (the host tests say which failed).
out=$NETLAT_VM_OUT

step() {  # step NAME COMMAND...: stdout to NAME.out, stderr to NAME.err (and the console), status to NAME.rc
    name=$1; shift
    echo "== $name: $*"
    start=$(date +%s)
    "$@" >"$out/$name.out" 2>"$out/$name.err"
    rc=$?
    echo "$rc" >"$out/$name.rc"
    tail -n 20 "$out/$name.err"
    echo "== $name: exit $rc after $(( $(date +%s) - start )) s"
}

uname -r >"$out/kernel.txt"
step plan-kprobe python3 tests/vm/guest/plan_checks.py --probes kprobe
step plan-tracepoint python3 tests/vm/guest/plan_checks.py --probes tracepoint
step doctor python3 -m tui doctor --json
step cli-auto python3 -m tui --headless --probes auto --duration 3 --json --workload loopback
step cli-kprobe python3 -m tui --headless --probes kprobe --duration 3 --json --workload loopback
step cli-bad-filter python3 -m tui --headless --probes kprobe --duration 1 --json --port 70000
# The guest must be clean afterwards: no kprobe registered, no BPF program loaded.
cat /sys/kernel/debug/kprobes/list >"$out/kprobes-at-end.txt"
bpftool -j prog show >"$out/bpf-progs-at-end.json"
exit 0
