# todae — top-level commands. See README.md.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE_FLAGS ?=
FUZZERS = fuzz_tokenizer_json fuzz_encode fuzz_tiktoken fuzz_safetensors fuzz_shard fuzz_gguf fuzz_jinja \
  fuzz_json_schema fuzz_api_request fuzz_toolcall fuzz_model_config fuzz_sft_jsonl fuzz_adapter_config \
  fuzz_task_yaml fuzz_eval_dataset \
  $(patsubst tests/fuzz/%.cpp,%,$(wildcard tests/fuzz/fuzz_agent_*.cpp))

.PHONY: all deps build build-app demo test test-fast test-asan fuzz-smoke interop bench format clean

all: build

deps:
	@bash scripts/install-deps.sh

build:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) > /dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The `todae` program alone (no test binaries): what the demo needs, in less of a fresh machine's time.
build-app:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) > /dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target todae

# The main job on the bundled data: a Korean-first tokenizer (shown token by token), then token
# shards and a small model pretrained for a few minutes, with its samples, then a LoRA fine-tune of
# it on Korean QA pairs with the same questions answered before and after (under 10 minutes).
demo: deps build-app
	@bash scripts/demo.sh $(BUILD)/todae
	@bash scripts/demo_pretrain.sh $(BUILD)/todae
	@bash scripts/demo_finetune.sh $(BUILD)/todae

# Everything CI runs: unit + interop tests, then the suite again under ASan+UBSan, then the fuzzers briefly.
test: deps test-fast test-asan fuzz-smoke

test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan:
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTODAE_SANITIZE=ON -DTODAE_FUZZ=ON \
	  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS=-O1 > /dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -LE slow

# The fuzzers live in the sanitizer build (one clang build for both: the library carries libFuzzer's
# coverage instrumentation there, which the unit tests do not mind), each run briefly on its seeds.
fuzz-smoke:
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTODAE_SANITIZE=ON -DTODAE_FUZZ=ON \
	  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS=-O1 > /dev/null
	@cmake --build build-asan -j $(JOBS) --target $(FUZZERS)
	@bash tests/fuzz/run.sh build-asan 20

# Interop with the reference tools: tokenizers and chat templates (npm), llama.cpp (built once from
# node-llama-cpp@3.21.1's bundled source into ~/.cache/todae/llama.cpp, ~12 min on 2 cores), PyTorch.
interop: build
	@bash scripts/build-llama-cpp.sh > /dev/null
	@cmake -S . -B $(BUILD) > /dev/null
	@cd $(BUILD) && ctest --output-on-failure -L interop

bench: deps build
	@bash scripts/install-deps.sh --bench
	@bash bench/tokenizer_bench.sh $(BUILD)/todae
	@bash bench/train_bench.sh --build $(BUILD) --shape S --rounds 3
	@bash bench/train_bench.sh --build $(BUILD) --shape M --rounds 3

format:
	@clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf build build-asan build-fuzz
