// The avx2 path: kernels.inc compiled with this file's flags (see CMakeLists.txt).
#define TODAE_KERNEL_NS avx2
#define TODAE_KERNEL_TABLE kernels_avx2
#define TODAE_KERNEL_NAME "avx2"
#include "tensor/kernels.inc"
