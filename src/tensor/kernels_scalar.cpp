// The scalar path: kernels.inc compiled with this file's flags (see CMakeLists.txt).
#define TODAE_KERNEL_NS scalar
#define TODAE_KERNEL_TABLE kernels_scalar
#define TODAE_KERNEL_NAME "scalar"
#include "tensor/kernels.inc"
