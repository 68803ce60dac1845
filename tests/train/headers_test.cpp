// Every public header of the training stack in one translation unit: catches two modules
// declaring the same name in namespace todae (it happened: AdamW, bf16 conversions).
#include <gtest/gtest.h>

#include "base/energy.h"
#include "formats/formats.h"
#include "train/finetune.h"
#include "train/run_util.h"
#include "train/train.h"
#if __has_include("model/model.h")
#include "model/model.h"
#endif
#if __has_include("tensor/tensor.h")
#include "tensor/tensor.h"
#endif
#if __has_include("data/data.h")
#include "data/data.h"
#endif

TEST(Headers, TrainingStackHeadersCompileTogether) { SUCCEED(); }
