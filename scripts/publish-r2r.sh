#!/usr/bin/env bash
# Publishes the deer command as a self-contained linux-x64 app precompiled with ReadyToRun into ./r2r (or $1): the
# build for a first run that is fast and still has a JIT, so the ILGPU backend works (Native AOT's deer cannot run
# ILGPU, which compiles kernels from IL). Composite ReadyToRun puts Deer, its dependencies and the framework in one
# version bubble, so the generic instantiations a solve needs (Solver over GruCell<float>, say) are precompiled; the
# instruction set is x86-64-v3 (AVX2, FMA) so the Vector<T> kernels are precompiled too, at 256 bits. On an older CPU
# the runtime ignores those and JIT-compiles as usual. docs/benchmarks.md ("Cold start") has the measured effect.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-r2r}
dotnet publish src/Deer.Cli -c Release -r linux-x64 --self-contained -p:PublishReadyToRun=true -p:PublishReadyToRunComposite=true \
  "-p:PublishReadyToRunCrossgen2ExtraArgs=--instruction-set:x86-64-v3" -o "$out"
echo "deer: $out/deer (run it as '$out/deer info')"
