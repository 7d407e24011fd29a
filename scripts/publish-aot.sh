#!/usr/bin/env bash
# Publishes the deer command as one Native AOT executable for linux-x64 into ./aot (or $1): no JIT, no .NET runtime
# needed to run it. Needs clang and zlib1g-dev (apt-get install -y clang zlib1g-dev) besides the .NET SDK.
# The instruction set is x86-64-v3 (AVX2, FMA): without it Native AOT compiles Deer's Vector<T> kernels for SSE and the
# solves run about 9x slower (docs/benchmarks.md, "Cold start"). It refuses to start on a CPU older than that.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-aot}
dotnet publish src/Deer.Cli -c Release -r linux-x64 -p:PublishAot=true -p:IlcInstructionSet=x86-64-v3 -o "$out"
echo "deer: $out/deer (run it as '$out/deer info')"
