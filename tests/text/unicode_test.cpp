#include "text/unicode.h"

#include <gtest/gtest.h>

using namespace todae::unicode;

TEST(Unicode, DecodeRejectsInvalidSequences) {
  uint32_t cp;
  EXPECT_EQ(decode("\xEA\xB0\x80", 0, &cp), 3);
  EXPECT_EQ(cp, 0xAC00u);
  EXPECT_EQ(decode("\xC0\xAF", 0, &cp), 0);          // overlong
  EXPECT_EQ(decode("\xED\xA0\x80", 0, &cp), 0);      // surrogate
  EXPECT_EQ(decode("\xF4\x90\x80\x80", 0, &cp), 0);  // > U+10FFFF
  EXPECT_EQ(decode("\xEA\xB0", 0, &cp), 0);          // truncated
  EXPECT_EQ(decode("\x80", 0, &cp), 0);              // stray continuation
  EXPECT_EQ(decode("\xF0\x9F\x98\x80", 0, &cp), 4);
  EXPECT_EQ(cp, 0x1F600u);
}

TEST(Unicode, ReplaceInvalidMatchesWhatwgMaximalSubparts) {
  // Examples from the WHATWG Encoding standard / Unicode 3.9 "U+FFFD substitution of maximal subparts".
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(replace_invalid("a\x80z"), "a" + R + "z");
  EXPECT_EQ(replace_invalid("\xC0\xAF"), R + R);
  EXPECT_EQ(replace_invalid("\xED\xA0\x80"), R + R + R);
  EXPECT_EQ(replace_invalid("\xE1\x80"), R);           // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(replace_invalid("\xF0\x9F\x98"), R);       // truncated 4-byte sequence
  EXPECT_EQ(replace_invalid("\xF0\x9F\x98" "A"), R + "A");
  EXPECT_EQ(replace_invalid("\xF5\x80"), R + R);
  EXPECT_EQ(replace_invalid(std::string("\0x", 2)), std::string("\0x", 2));
  EXPECT_EQ(replace_invalid("안녕"), "안녕");
}

TEST(Unicode, NfcComposesHangulAndKeepsInvalidBytes) {
  // NFD jamo of 한 (U+1112 U+1161 U+11AB) and e + combining acute.
  EXPECT_EQ(nfc("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), "한");
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(nfc("a\xFF" "e\xCC\x81"), "a\xFF\xC3\xA9");
  EXPECT_EQ(nfc("이미 NFC 입니다"), "이미 NFC 입니다");
}

TEST(Unicode, ByteLevelAlphabetRoundTrips) {
  for (int b = 0; b < 256; ++b) EXPECT_EQ(unicode_to_byte(byte_to_unicode(uint8_t(b))), b);
  EXPECT_EQ(byte_to_unicode(' '), 0x120u);  // "Ġ"
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(char(b));
  std::string back;
  ASSERT_TRUE(bytelevel_to_bytes(bytes_to_bytelevel(all), &back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(bytelevel_to_bytes("한", &back));
}
