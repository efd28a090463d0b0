// fxlic DPU oracle: a small driver of our own around the DPU instruction simulator of VART
// (sim-runner, AMD/Xilinx, Apache-2.0), which the harness compiles from the user's checkout.
//
// It sets the simulator up for one DPU target (a target-factory prototxt, e.g.
// DPUCZDX8G_ISA1_B4096), then executes a line protocol read from stdin:
//
//   W <bank_id> <bank_addr> <n> <v_1> ... <v_n>   write n int8 values into an on-chip bank
//                                                  (the simulator's Bank::Write)
//   I <assembly instruction>                       decode it with the simulator's own reader
//                                                  (ReadInst: field names, ranges, machine code),
//                                                  create it with its InstFactory, Exec() it
//   R <bank_id> <bank_addr> <n>                    read n int8 values back (Bank::Read):
//                                                  answers "D <v_1> ... <v_n>"
//   E                                              end of a case: answers "OK"
//
// At start it prints one "GROUP <name> <type> <base_id> <bank_num> <width> <depth>" line per bank
// group of the target and then "READY <name> <type> <key> <value> ...".
//
// An instruction the simulator rejects (a failed UNI_LOG_CHECK or FATAL, thrown by our UniLog shim)
// answers "ERR <message>", and the rest of the case up to its "E" is skipped ("E" still answers "OK").
// Nothing here is taken from the simulator; it only calls its public classes.

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/text_format.h>

#include "ArchCfg.hpp"
#include "Buffer.hpp"
#include "InstFactory.hpp"
#include "ReadInst.hpp"
#include "SimCfg.hpp"
#include "pub/InstBase.hpp"

namespace {

std::shared_ptr<Bank<DPU_DATA_TYPE>> bank_or_throw(int id) {
  auto bank = Buffer<DPU_DATA_TYPE>::Instance().GetBank(id);
  if (!bank) throw fxlic_oracle::SimError("no bank with id " + std::to_string(id));
  return bank;
}

void setup(const std::string& prototxt) {
  std::ifstream in(prototxt);
  if (!in) throw std::runtime_error("cannot read target " + prototxt);
  std::stringstream text;
  text << in.rdbuf();
  vitis::ai::Target target;
  if (!google::protobuf::TextFormat::ParseFromString(text.str(), &target))
    throw std::runtime_error("cannot parse target " + prototxt);
  // The order of sim_runner.cpp's SimRunner(): architecture, white lists, bank groups, ISA.
  ArchCfg::Instance().set_param(target);
  ArchCfg::Instance().init_white_lists();
  SimCfg::Instance().set_fmap_bank_group();
  SimCfg::Instance().set_isa_version(target.type());
  InstBase::StaticInit(SimCfg::Instance().get_debug_path());
  Buffer<DPU_DATA_TYPE>::Instance();
  for (const auto& g : target.bank_group())
    std::cout << "GROUP " << g.name() << " " << g.type() << " " << g.base_id() << " " << g.bank_num() << " "
              << g.bank_width() << " " << g.bank_depth() << "\n";
  const auto& conv = target.conv_engine();
  const auto& elew = target.eltwise_engine();
  std::cout << "READY " << target.name() << " " << target.type() << " isa "
            << SimCfg::Instance().get_isa_version() << " conv_pp " << conv.pixel_parallel() << " conv_icp "
            << conv.input_channel_parallel() << " conv_ocp " << conv.output_channel_parallel() << " elew_pp "
            << elew.pixel_parallel() << " elew_cp " << elew.channel_parallel() << " char_signed "
            << (static_cast<char>(-1) < 0) << std::endl;
}

void execute(const std::string& assembly, int inst_id) {
  ReadInst reader(std::vector<std::string>{assembly});
  if (reader.GetInstNum() != 1) throw fxlic_oracle::SimError("not one instruction: " + assembly);
  auto fields = reader.GetInstStr(0);
  auto values = reader.GetInstVal(0);
  auto inst = InstFactory::CreateInst(inst_id, fields, values);
  inst->Exec();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " TARGET.prototxt WORKDIR" << std::endl;
    return 2;
  }
  const std::string prototxt = argv[1];
  // The simulator reads ./config/SIMCfg.txt relative to the working directory (written by run.py).
  if (chdir(argv[2]) != 0) {
    std::cerr << "cannot enter " << argv[2] << std::endl;
    return 2;
  }
  try {
    setup(prototxt);
  } catch (const std::exception& e) {
    std::cout << "FAILED " << e.what() << std::endl;
    return 1;
  }

  std::string line;
  bool skipping = false;
  int inst_id = 0;
  std::vector<DPU_DATA_TYPE> buf;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    const char op = line[0];
    if (op == 'E') {
      std::cout << "OK\n";
      skipping = false;
      std::cout.flush();
      continue;
    }
    if (skipping) continue;
    try {
      std::istringstream ls(line.substr(1));
      if (op == 'W' || op == 'R') {
        int bank_id = 0, addr = 0, n = 0;
        ls >> bank_id >> addr >> n;
        if (!ls || n < 0) throw fxlic_oracle::SimError("bad line: " + line);
        auto bank = bank_or_throw(bank_id);
        buf.assign(n, 0);
        if (op == 'W') {
          for (int i = 0; i < n; i++) {
            int v = 0;
            ls >> v;
            if (!ls || v < -128 || v > 127) throw fxlic_oracle::SimError("bad value in: " + line);
            buf[i] = static_cast<DPU_DATA_TYPE>(v);
          }
          bank->Write(addr, n, buf.data());
        } else {
          bank->Read(addr, n, buf.data());
          std::cout << "D";
          for (int i = 0; i < n; i++) std::cout << ' ' << static_cast<int>(static_cast<int8_t>(buf[i]));
          std::cout << '\n';
        }
      } else if (op == 'I') {
        execute(line.substr(2), inst_id++);
      } else {
        throw fxlic_oracle::SimError("unknown command: " + line);
      }
    } catch (const std::exception& e) {
      std::string msg = e.what();
      for (auto& c : msg)
        if (c == '\n') c = ' ';
      std::cout << "ERR " << msg << '\n';
      std::cout.flush();
      skipping = true;
    }
  }
  return 0;
}
