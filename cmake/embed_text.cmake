# cmake -DIN=FILE -DOUT=FILE.cpp -DNAME=kSymbol -DNAMESPACE=ns -P embed_text.cmake
# Writes FILE's text as `extern const char NAME[]` (a raw string literal) into OUT, so bundled
# data (a built-in task's documents) is part of the binary and found wherever it runs.
file(READ "${IN}" content)
string(FIND "${content}" ")TODAE_EMBED\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN}: holds the raw-string delimiter )TODAE_EMBED\"")
endif()
get_filename_component(name "${IN}" NAME)
file(WRITE "${OUT}.tmp" "// Generated from ${name} by cmake/embed_text.cmake; do not edit.\nnamespace ${NAMESPACE} {\nextern const char ${NAME}[];\nconst char ${NAME}[] = R\"TODAE_EMBED(${content})TODAE_EMBED\";\n}\n")
file(RENAME "${OUT}.tmp" "${OUT}")
