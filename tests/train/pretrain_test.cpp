// Runs the end-to-end `todae pretrain` scripts from ctest (the binary is TODAE_BIN): bit-exact
// resume after SIGKILL, SIGINT, error messages; and 2-rank MPI against one process.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <string>

static int run_script(const char* name) {
  std::string cmd = std::string("bash ") + TODAE_SOURCE_DIR + "/tests/train/" + name + " " + TODAE_BIN + " " +
                    TODAE_SOURCE_DIR;
  int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(Pretrain, ResumeIsBitExactAndSignalsAndErrors) { EXPECT_EQ(run_script("pretrain_test.sh"), 0); }

TEST(Pretrain, TwoMpiRanksMatchOneProcess) {
  int rc = run_script("pretrain_mpi_test.sh");
  if (rc == 77) GTEST_SKIP() << "no mpirun or no MPI in this build";
  EXPECT_EQ(rc, 0);
}
