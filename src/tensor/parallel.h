// todae tensor: the kernels' thread pool (tensor.cpp), as the kernels and the modules above use it.
// Only <cstddef>-level includes: the per-ISA kernel files include it too, and must not share
// inline code with the rest of the program.
#pragma once

namespace todae {

namespace detail {
// Runs fn(ctx, i) for every i in [0, n), the calling thread included, handing out indices one at a
// time; returns when all are done. Serial when the pool has one thread, n is 1, or when called
// from inside a pool task (no nesting).
void parallel_run(int n, void (*fn)(void* ctx, int i), void* ctx);
int pool_threads();
}  // namespace detail

// Runs f(i) for every i in [0, n) on the kernels' pool (the caller takes part) and returns when all
// are done; nested calls run inline; n <= 0 does nothing. The first exception a task throws stops
// the job and is rethrown here once every thread has stopped.
template <class F>
void parallel_for_each(int n, const F& f) {
  detail::parallel_run(n, [](void* c, int i) { (*static_cast<const F*>(c))(i); }, const_cast<F*>(&f));
}

}  // namespace todae
