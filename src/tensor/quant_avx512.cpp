// The avx512 path of quant.h: quant.inc compiled with this file's flags (see CMakeLists.txt).
#define TODAE_KERNEL_NS q_avx512
#define TODAE_QUANT_TABLE quant_avx512
#define TODAE_QUANT_NAME "avx512"
#include "tensor/quant.inc"
