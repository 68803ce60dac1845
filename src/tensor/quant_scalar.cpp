// The scalar path of quant.h: quant.inc compiled with this file's flags (see CMakeLists.txt).
#define TODAE_KERNEL_NS q_scalar
#define TODAE_QUANT_TABLE quant_scalar
#define TODAE_QUANT_NAME "scalar"
#include "tensor/quant.inc"
