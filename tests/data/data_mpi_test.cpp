// Runs tests/data/data_mpi_test.sh from ctest (the binary is TODAE_BIN): `mpirun -np 2 todae data
// run` against one process, byte for byte.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <string>

TEST(DataMpi, TwoRanksMatchOneProcess) {
  std::string cmd = std::string("bash ") + TODAE_SOURCE_DIR + "/tests/data/data_mpi_test.sh " + TODAE_BIN + " " +
                    TODAE_SOURCE_DIR;
  int st = std::system(cmd.c_str());
  int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (rc == 77) GTEST_SKIP() << "no mpirun or no MPI in this build";
  EXPECT_EQ(rc, 0);
}
