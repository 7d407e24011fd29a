// A CPU emulator for Deer's CUDA kernels, for tests on machines without a GPU. It compiles deer.cu as C++ with
// stand-ins for CUDA's built-ins and runs a launch block by block, each block's threads as real OS threads that share
// the block's dynamic shared memory and meet at __syncthreads() on a barrier. So the kernels' logic (indexing,
// barriers, reductions, atomics) runs as written. What it cannot show: speed, warp-level behaviour, the compiler
// NVRTC is, and memory-model subtleties beyond what the barrier and the atomics give.
//
// Build: g++ -std=c++20 -O1 -shared -fPIC -pthread -DREAL=float -I<kernels> emulator.cpp -o libdeeremu_float.so
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <algorithm>

struct uint3_ { unsigned x, y, z; };
thread_local uint3_ threadIdx, blockIdx;
static uint3_ blockDim, gridDim;
thread_local std::barrier<>* deer_barrier = nullptr;
thread_local unsigned char* deer_shared = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__
#define DEER_SHARED(name) unsigned char* name = deer_shared

static inline void __syncthreads() { deer_barrier->arrive_and_wait(); }

static inline unsigned long long atomicMax(unsigned long long* address, unsigned long long value)
{
    unsigned long long old = __atomic_load_n(address, __ATOMIC_SEQ_CST);
    while (value > old && !__atomic_compare_exchange_n(address, &old, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) { }
    return old;
}

static inline long long __double_as_longlong(double d) { long long r; std::memcpy(&r, &d, 8); return r; }
static inline double __longlong_as_double(long long l) { double r; std::memcpy(&r, &l, 8); return r; }
using std::min; using std::fma; using std::fabs; using std::fmax; using std::tanh; using std::exp;

#include "deer.cu"

template <typename... A, std::size_t... I>
static void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) { kernel(*static_cast<A*>(args[I])...); }

template <typename... A>
static std::function<void(void**)> wrap(void (*kernel)(A...))
{
    return [kernel](void** args) { call(kernel, args, std::index_sequence_for<A...>{}); };
}

struct Kernel
{
    std::function<void(void**)> run;
    bool barriers;   // uses __syncthreads(): its threads must run concurrently
};

static const std::map<std::string, Kernel>& registry()
{
    // Kernels without __syncthreads() have independent threads (atomics aside), so the emulator runs a block's threads
    // one after another on the calling thread instead of creating an OS thread per CUDA thread.
    static const std::map<std::string, Kernel> kernels = {
        {"scan_diag_reduce", {wrap(scan_diag_reduce), false}}, {"scan_diag_carry", {wrap(scan_diag_carry), false}},
        {"scan_diag_apply", {wrap(scan_diag_apply), false}},
        {"scan_dense_reduce", {wrap(scan_dense_reduce), true}}, {"scan_dense_carry", {wrap(scan_dense_carry), true}},
        {"scan_dense_apply", {wrap(scan_dense_apply), true}},
        {"rnn_eval", {wrap(rnn_eval), false}}, {"gru_eval", {wrap(gru_eval), false}}, {"lstm_eval", {wrap(lstm_eval), false}},
        {"gilr_coefficients", {wrap(gilr_coefficients), false}}, {"add_bias", {wrap(add_bias), false}},
        {"shift_states", {wrap(shift_states), false}}, {"linear_residual", {wrap(linear_residual), false}},
        {"sequential_cell", {wrap(sequential_cell), true}},
    };
    return kernels;
}

// Runs kernel `name` on a grid of gx × gy blocks of bx threads with `shared` bytes of dynamic shared memory per block.
// Returns 0, or 1 for an unknown kernel.
extern "C" int deer_emulate(const char* name, unsigned gx, unsigned gy, unsigned bx, unsigned shared, void** args)
{
    auto found = registry().find(name);
    if (found == registry().end()) return 1;
    const auto& kernel = found->second.run;
    gridDim = {gx, gy, 1};
    blockDim = {bx, 1, 1};
    for (unsigned by = 0; by < gy; by++)
    {
        for (unsigned bxi = 0; bxi < gx; bxi++)
        {
            std::vector<unsigned char> memory(std::max(shared, 1u));
            if (!found->second.barriers)
            {
                blockIdx = {bxi, by, 0};
                deer_shared = memory.data();
                for (unsigned t = 0; t < bx; t++)
                {
                    threadIdx = {t, 0, 0};
                    kernel(args);
                }

                continue;
            }

            std::barrier<> barrier(static_cast<std::ptrdiff_t>(bx));
            std::vector<std::thread> threads;
            threads.reserve(bx);
            for (unsigned t = 0; t < bx; t++)
            {
                threads.emplace_back([&, t]() {
                    threadIdx = {t, 0, 0};
                    blockIdx = {bxi, by, 0};
                    deer_barrier = &barrier;
                    deer_shared = memory.data();
                    kernel(args);
                    // A thread that returns early must still let the others pass their barriers.
                    barrier.arrive_and_drop();
                });
            }
            for (auto& thread : threads) thread.join();
        }
    }
    return 0;
}
