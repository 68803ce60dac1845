// Reading documents: formats, compression, corrupt input, JSONL parsing, UTF-8, stage outputs.
#include <gtest/gtest.h>

#include <zlib.h>
#include <zstd.h>

#include <nlohmann/json.hpp>

#include "data_test_util.h"

namespace todae::test {
namespace {

std::vector<std::string> texts(const InputOptions& in) {
  std::vector<std::string> out;
  read_documents(in, [&](Doc& d) { out.push_back(d.text); });
  return out;
}

std::string gzip(const std::string& s) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, s.size()) + 64, '\0');
  zs.next_in = (Bytef*)s.data();
  zs.avail_in = uInt(s.size());
  zs.next_out = (Bytef*)out.data();
  zs.avail_out = uInt(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string zstd(const std::string& s) {
  std::string out(ZSTD_compressBound(s.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), s.data(), s.size(), 3));
  return out;
}

TEST(Read, TextDocumentsAreSeparatedByBlankLines) {
  TempDir t;
  InputOptions in;
  in.inputs = {t.file("a.txt", "\n\n첫 문서\n둘째 줄\n\n  \t\n\nsecond doc\r\n\r\nthird\n")};
  EXPECT_EQ(texts(in), (std::vector<std::string>{"첫 문서\n둘째 줄", "second doc", "third"}));
  in.format = "lines";
  EXPECT_EQ(texts(in), (std::vector<std::string>{"첫 문서", "둘째 줄", "second doc", "third"}));
  in.format = "file";
  EXPECT_EQ(texts(in).size(), 1u);
  in.format = "xml";
  EXPECT_THROW(texts(in), Error);
}

TEST(Read, ChunkingNeverSplitsADocument) {
  TempDir t;
  std::vector<std::string> docs = sample_docs(200);
  InputOptions in;
  in.inputs = {t.file("a.txt", join_docs(docs))};
  for (size_t chunk : {1, 7, 64, 1000, 1 << 20}) {
    in.chunk_bytes = chunk;
    EXPECT_EQ(texts(in), docs) << chunk;
  }
}

TEST(Read, CompressedInputs) {
  TempDir t;
  std::vector<std::string> docs = sample_docs(50);
  std::string text = join_docs(docs);
  InputOptions in;
  in.inputs = {t.file("a.txt.gz", gzip(text)), t.file("b.txt.zst", zstd(text)),
               t.file("c.txt.gz", gzip(text.substr(0, 500)) + gzip(text.substr(500)))};  // two gzip members
  std::vector<std::string> got = texts(in);
  ASSERT_EQ(got.size(), docs.size() * 3);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], docs[i % docs.size()]);
}

TEST(Read, CorruptCompressedInputIsSkippedOrFatalWhenStrict) {
  TempDir t;
  std::vector<std::string> docs = sample_docs(400);
  for (int i = 0; i < 5000; ++i) docs.push_back(cat("문서 ", i, " ", i * 7919 % 10007, " ", std::string(i % 50, 'x')));
  std::string text = join_docs(docs);  // several zstd blocks, so a cut frame still holds some
  std::string gz = gzip(text), zs = zstd(text);
  for (auto [name, data] : {std::pair{"t.txt.gz", gz.substr(0, gz.size() / 2)}, std::pair{"t.txt.zst", zs.substr(0, zs.size() / 2)}}) {
    InputOptions in;
    in.inputs = {t.file(name, data)};
    std::vector<std::string> got = texts(in);  // a warning, no error
    EXPECT_GT(got.size(), 0u) << name;
    EXPECT_LT(got.size(), docs.size()) << name;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], docs[i]) << "only whole documents are kept";
    in.strict = true;
    try {
      texts(in);
      ADD_FAILURE() << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
  std::string bad = gz;
  bad[gz.size() / 2] ^= 0x55;
  bad[gz.size() / 2 + 1] ^= 0x55;
  InputOptions in;
  in.inputs = {t.file("bad.txt.gz", bad)};
  in.strict = true;
  EXPECT_THROW(texts(in), Error);
}

TEST(Read, JsonlRecords) {
  TempDir t;
  std::string jl =
      "{\"text\": \"안녕\\n하세요\", \"id\": 1, \"meta\": {\"a\": [1, 2.5e3, null, true]}}\n"
      "\n"
      "{\"id\": 2, \"text\": \"\\ud55c\\uAE00 \\ud83d\\ude00 \\\"q\\\"\", \"source\": \"web\"}\n"
      "{\"text\": \"broken\", }\n"
      "{\"body\": \"no text\"}\n"
      "{\"text\": 5}\n"
      "{\"text\": null}\n"
      "{\"text\": \"last\"}";
  InputOptions in;
  in.inputs = {t.file("a.jsonl", jl)};
  std::vector<Doc> docs;
  read_documents(in, [&](Doc& d) { docs.push_back(d); });
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "안녕\n하세요");
  EXPECT_EQ(docs[0].source, "a");
  EXPECT_EQ(docs[1].text, "한글 😀 \"q\"");
  EXPECT_EQ(docs[1].source, "web");
  EXPECT_EQ(docs[2].text, "last");
  in.strict = true;
  try {
    texts(in);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.jsonl:4: malformed JSON line"), std::string::npos) << e.what();
  }
  in.strict = false;
  in.jsonl_field = "body";
  EXPECT_EQ(texts(in), std::vector<std::string>{"no text"});
}

TEST(JsonLine, AgreesWithNlohmann) {
  const char* lines[] = {
      "{}",
      "{\"text\":\"\"}",
      " { \"text\" : \"a\\/b\\\\c\\t\\r\\b\\f\" } ",
      "{\"x\":{\"text\":\"nested\"},\"text\":\"top\"}",
      "{\"text\":\"\\u0000\\u001f\\u00e9\\u20ac\"}",
      "{\"a\":-0.5e-3,\"b\":[[],[{}]],\"text\":\"ok\",\"c\":false}",
      "{\"text\":\"dup\",\"text\":\"last wins\"}",
  };
  for (const char* l : lines) {
    const std::string_view keys[] = {"text"};
    std::string v, err;
    bool found;
    ASSERT_TRUE(parse_json_line(l, keys, &v, &found, &err)) << l << ": " << err;
    nlohmann::json j = nlohmann::json::parse(l);
    EXPECT_EQ(found, j.contains("text")) << l;
    if (found) {
      EXPECT_EQ(v, j["text"].get<std::string>()) << l;
    }
  }
  const char* bad[] = {"",         "[]",           "{",           "{\"a\"}",          "{\"a\":}",         "{\"a\":1,}",
                       "{\"a\":01}", "{\"a\":1.}",   "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":\"\x01\"}", "{} x",
                       "{\"text\":[\"a\"]}", "{\"a\":\"unterminated}", "{\"a\":-}", "{'a':1}"};
  for (const char* l : bad) {
    const std::string_view keys[] = {"text"};
    std::string v, err;
    bool found;
    EXPECT_FALSE(parse_json_line(l, keys, &v, &found, &err)) << l;
    EXPECT_FALSE(err.empty()) << l;
  }
  std::string deep(1000, '[');
  std::string line = "{\"a\":" + deep + "}";
  const std::string_view keys[] = {"text"};
  std::string v, err;
  bool found;
  EXPECT_FALSE(parse_json_line(line, keys, &v, &found, &err));
  EXPECT_NE(err.find("nested too deeply"), std::string::npos);
}

TEST(JsonLine, WriteThenRead) {
  std::string s;
  for (int c = 0; c < 128; ++c) s.push_back(char(c));
  s += "한국어 \xF0\x9F\x98\x80";
  Doc d{s, "src\"x", "ko"};
  std::string line;
  append_doc_jsonl(line, d);
  ASSERT_EQ(line.back(), '\n');
  line.pop_back();
  const std::string_view keys[] = {"text", "source", "lang"};
  std::string v[3], err;
  bool found[3];
  ASSERT_TRUE(parse_json_line(line, keys, v, found, &err)) << err;
  EXPECT_EQ(v[0], s);
  EXPECT_EQ(v[1], "src\"x");
  EXPECT_EQ(v[2], "ko");
  EXPECT_EQ(nlohmann::json::parse(line)["text"].get<std::string>(), s);
}

TEST(Read, ByteOrderMarkAtFileStart) {
  TempDir t;
  InputOptions in;
  in.inputs = {t.file("a.jsonl", "\xEF\xBB\xBF{\"text\": \"bom\"}\n{\"text\": \"two\"}\n"), t.file("b.txt", "\xEF\xBB\xBFtext\n")};
  EXPECT_EQ(texts(in), (std::vector<std::string>{"bom", "two", "text"}));
}

TEST(Read, InvalidUtf8IsRepairedOrDropped) {
  TempDir t;
  InputOptions in;
  in.inputs = {t.file("a.txt", "good 한국어\n\nbad \xFF\xFE byte\n\nover\xC0\xAFlong\n\nsurrogate \xED\xA0\x80\n")};
  std::vector<std::string> got = texts(in);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0], "good 한국어");
  EXPECT_EQ(got[1], "bad \xEF\xBF\xBD\xEF\xBF\xBD byte");
  for (const auto& g : got) EXPECT_EQ(replace_invalid_utf8(g), g);
  in.invalid_utf8 = "drop";
  EXPECT_EQ(texts(in), std::vector<std::string>{"good 한국어"});
}

TEST(Read, FoldersTakeTextFilesOnly) {
  TempDir t;
  make_directories(t.path + "/c/sub");
  t.file("c/a.txt", "a\n");
  t.file("c/sub/b.jsonl", "{\"text\": \"b\"}\n");
  t.file("c/a.LICENSE.md", "licence\n");
  t.file("c/packages.list", "x\n");
  t.file("c/.hidden.txt", "h\n");
  InputOptions in;
  in.inputs = {t.path + "/c"};
  EXPECT_EQ(texts(in), (std::vector<std::string>{"a", "b"}));
  std::vector<std::string> sources;
  read_documents(in, [&](Doc& d) { sources.push_back(d.source); });
  EXPECT_EQ(sources, (std::vector<std::string>{"c/a", "c/sub/b"}));  // FOLDER/RELATIVE-STEM
  in.inputs = {t.path + "/c/"};
  sources.clear();
  read_documents(in, [&](Doc& d) { sources.push_back(d.source); });
  EXPECT_EQ(sources, (std::vector<std::string>{"c/a", "c/sub/b"}));
  in.inputs = {t.path + "/c/a.LICENSE.md"};  // named explicitly: read as text
  EXPECT_EQ(texts(in), std::vector<std::string>{"licence"});
  in.inputs = {t.path + "/empty"};
  EXPECT_THROW(texts(in), Error);
}

TEST(Ingest, WritesPartsAndReport) {
  TempDir t;
  std::vector<std::string> docs = sample_docs(100);
  InputOptions in;
  in.inputs = {t.file("a.txt", join_docs(docs))};
  in.chunk_bytes = 500;
  CommonOptions co = quiet_common(t.path + "/out", 3);
  co.part_bytes = 2000;
  StageReport r = run_ingest(in, co);
  EXPECT_EQ(r.docs_in, 100u);
  EXPECT_EQ(r.docs_out, 100u);
  EXPECT_GT(r.outputs.size(), 2u);
  StageReport back = parse_report(read_file(t.path + "/out/report.json"), "report.json");
  EXPECT_EQ(back.docs_out, 100u);
  EXPECT_EQ(back.outputs, r.outputs);
  EXPECT_EQ(back.sources["a"].docs_in, 100u);
  std::vector<Doc> got = read_docs(t.path + "/out");
  ASSERT_EQ(got.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(got[i].text, docs[i]);
    EXPECT_EQ(got[i].source, "a");
  }
  // Compressed parts, and byte-identical output with one thread.
  co.compress = true;
  co.output = t.path + "/z";
  run_ingest(in, co);
  EXPECT_EQ(read_docs(t.path + "/z").size(), docs.size());
  co.compress = false;
  co.threads = 1;
  co.output = t.path + "/one";
  run_ingest(in, co);
  for (const auto& name : r.outputs) EXPECT_EQ(read_file(t.path + "/one/" + name), read_file(t.path + "/out/" + name));
}

TEST(Report, ParseErrorsNameTheField) {
  StageReport r;
  r.stage = "clean";
  r.outputs = {"part-00000.jsonl"};
  std::string good = report_to_json(r);
  EXPECT_NO_THROW(parse_report(good, "r.json"));
  auto expect = [&](const std::string& text, const std::string& want) {
    try {
      parse_report(text, "d/report.json");
      ADD_FAILURE() << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect("{", "d/report.json: malformed JSON");
  std::string s = good;
  s.replace(s.find("\"docs_in\": 0"), 12, "\"docs_in\": -1");
  expect(s, "d/report.json: docs_in: expected a non-negative integer");
  s = good;
  s.replace(s.find("\"part-00000.jsonl\""), 18, "\"../x\"");
  expect(s, "outputs[0]: '../x' is not a file name");
  s = good;
  s.replace(s.find("\"stage\""), 7, "\"stagex\"");
  expect(s, "d/report.json: stage: missing");
}

}  // namespace
}  // namespace todae::test
