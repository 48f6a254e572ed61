// Streaming with stop strings: text goes out as soon as no stop string can begin in it; a stop string that
// spans tokens is never sent; the answer ends before it.
#include <gtest/gtest.h>

#include <map>

#include "generate/text_stream.h"

namespace l4::generate {
namespace {

// Token i decodes to pieces[i] (a toy vocabulary).
struct Toy {
  std::vector<std::string> pieces;
  std::string sent;
  std::vector<std::string> chunks;
  TextStream stream(std::vector<std::string> stops) {
    return TextStream(
        [this](const std::vector<int64_t>& ids) {
          std::string s;
          for (int64_t id : ids) s += pieces[static_cast<size_t>(id)];
          return s;
        },
        std::move(stops),
        [this](const std::string& c) {
          sent += c;
          chunks.push_back(c);
        });
  }
};

TEST(TextStream, NoStopSendsEveryTokenAtOnce) {
  Toy toy{{"Hel", "lo", " wor", "ld"}};
  TextStream s = toy.stream({});
  for (int64_t id : {0, 1, 2, 3}) EXPECT_TRUE(s.push(id));
  EXPECT_EQ(toy.chunks, (std::vector<std::string>{"Hel", "lo", " wor", "ld"}));
  EXPECT_EQ(s.finish(), "Hello world");
  EXPECT_FALSE(s.stopped());
}

TEST(TextStream, StopSpanningTokensIsNeverSent) {
  Toy toy{{"The answer", " is: E", "ND", " more"}};
  TextStream s = toy.stream({"END"});
  EXPECT_TRUE(s.push(0));
  EXPECT_EQ(toy.sent, "The answer");
  EXPECT_TRUE(s.push(1));  // "E" may begin "END": held back
  EXPECT_EQ(toy.sent, "The answer is: ");
  EXPECT_FALSE(s.push(2));
  EXPECT_TRUE(s.stopped());
  EXPECT_FALSE(s.push(3));
  EXPECT_EQ(s.finish(), "The answer is: ");
  EXPECT_EQ(toy.sent, "The answer is: ");
}

TEST(TextStream, HeldBytesGoOutWhenTheStopDoesNotComplete) {
  Toy toy{{"a E", "NX", "!"}};
  TextStream s = toy.stream({"END", "xyz"});
  EXPECT_TRUE(s.push(0));
  EXPECT_EQ(toy.sent, "a ");
  EXPECT_TRUE(s.push(1));  // "ENX" is no stop string
  EXPECT_EQ(toy.sent, "a ENX");
  EXPECT_TRUE(s.push(2));
  EXPECT_EQ(s.finish(), "a ENX!");
}

TEST(TextStream, EarliestOfSeveralStopsInOneTokenWins) {
  Toy toy{{"ok", " 1. b 2. c"}};
  TextStream s = toy.stream({"2.", "1."});
  EXPECT_TRUE(s.push(0));
  EXPECT_FALSE(s.push(1));
  EXPECT_EQ(s.finish(), "ok ");
}

TEST(TextStream, HeldTailIsSentByFinish) {
  Toy toy{{"x <"}};
  TextStream s = toy.stream({"<stop>"});
  EXPECT_TRUE(s.push(0));
  EXPECT_EQ(toy.sent, "x ");
  EXPECT_EQ(s.finish(), "x <");
  EXPECT_EQ(toy.sent, "x <");
}

}  // namespace
}  // namespace l4::generate
