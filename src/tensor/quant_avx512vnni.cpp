// The avx512vnni path of quant.h: quant.inc compiled with this file's flags (see CMakeLists.txt).
#define TODAE_KERNEL_NS q_avx512vnni
#define TODAE_QUANT_TABLE quant_avx512vnni
#define TODAE_QUANT_NAME "avx512vnni"
#include "tensor/quant.inc"
