// The avx2 path of quant.h: quant.inc compiled with this file's flags (see CMakeLists.txt).
#define TODAE_KERNEL_NS q_avx2
#define TODAE_QUANT_TABLE quant_avx2
#define TODAE_QUANT_NAME "avx2"
#include "tensor/quant.inc"
