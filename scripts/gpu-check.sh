#!/usr/bin/env bash
# Builds what a GPU machine without .NET needs to check Deer's ILGPU backend on the GPU, into gpu-check/ (ignored by git):
#   gpu-check/deer     a self-contained single-file linux-x64 deer (InvariantGlobalization: no ICU needed)
#   gpu-check/run.sh   on the GPU machine: deer info; deer selftest --device gpu; deer bench --device gpu
# Carry gpu-check/ to the machine (the device tool's `carry`) and run `bash gpu-check/run.sh`; results go to $OUT
# (or gpu-check/results). Pass --quick to make run.sh's bench a smoke run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/gpu-check"
rm -rf "$out"
dotnet publish "$root/src/Deer.Cli" -c Release -r linux-x64 --self-contained \
  -p:PublishSingleFile=true -p:InvariantGlobalization=true -p:EnableCompressionInSingleFile=true \
  -p:DebugType=none -o "$out" >/dev/null
mkdir -p "$out/peers"
cp "$root/benchmarks/peers/"*.py "$out/peers/"
bench_args="${1:-}"
cat > "$out/run.sh" <<RUN
#!/usr/bin/env bash
# Runs on the GPU machine. Each step's output is kept even if a later one fails.
set -u
here=\$(cd "\$(dirname "\$0")" && pwd)
results=\${OUT:-\$here/results}
mkdir -p "\$results"
python=\$(command -v python3 || true)
# Within 8 minutes in all: each step has its own limit, so one that hangs cannot take the others' time.
timeout 60 "\$here/deer" info 2>&1 | tee "\$results/info.txt"
timeout 150 "\$here/deer" selftest --device gpu --out "\$results/selftest.json" 2>&1 | tee "\$results/selftest.txt"
timeout 260 "\$here/deer" bench --device gpu --out-dir "\$results" ${bench_args} \${python:+--python "\$python"} 2>&1 | tee "\$results/bench.txt"
# The short table, last.
echo
echo "== selftest: \$(tail -n 1 "\$results/selftest.txt" 2>/dev/null)"
if [ -f "\$results/bench-gpu.md" ]; then grep '^|' "\$results/bench-gpu.md"; else echo "== bench: no bench-gpu.md (see bench.txt)"; tail -n 5 "\$results/bench.txt"; fi
RUN
chmod +x "$out/run.sh" "$out/deer"
du -sh "$out"
echo "ready: carry gpu-check/ and run: bash gpu-check/run.sh"
