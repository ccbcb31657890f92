// Launches one kernel of kernels.cu on the CPU (cuda_host.h) for tests/kernels_on_cpu.rs:
//   driver KERNEL GRID BLOCK ARG...
// each ARG is `b:PATH` (a buffer: the file's bytes, written back after the launch),
// `i:N` (an integer, passed as int or long long as the kernel takes it) or `f:X` (a
// float). The test compiles this with kernels_host.cu, its copy of kernels.cu.
#include "cuda_host.h"
#include "kernels_host.cu"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

struct Arg {
    std::string path;
    std::vector<unsigned char> bytes;
    long long integer = 0;
    float real = 0;
};

static std::vector<Arg> args;
static std::function<void()> call;

template <class T>
static T* B(int i) {
    return reinterpret_cast<T*>(args[i].bytes.data());
}
static int I(int i) { return (int)args[i].integer; }
static long long L(int i) { return args[i].integer; }
static float F(int i) { return args[i].real; }

static bool dispatch(const std::string& k) {
    if (k == "init_best") call = [] { init_best(B<float>(0), B<long long>(1), L(2)); };
    else if (k == "l2_norms") call = [] { l2_norms(B<float>(0), L(1), I(2), B<float>(3)); };
    else if (k == "l2_norms_f16")
        call = [] { l2_norms_f16(B<unsigned short>(0), L(1), I(2), B<float>(3)); };
    else if (k == "select_tile")
        call = [] {
            select_tile(B<float>(0), I(1), I(2), L(3), B<float>(4), B<float>(5), I(6),
                        B<unsigned char>(7), I(8), I(9), I(10), B<float>(11), B<long long>(12));
        };
    else if (k == "argmin_tile")
        call = [] {
            argmin_tile(B<float>(0), I(1), I(2), L(3), B<float>(4), B<float>(5), I(6),
                        B<unsigned char>(7), I(8), B<float>(9), B<long long>(10));
        };
    else if (k == "range_tile")
        call = [] {
            range_tile(B<float>(0), I(1), I(2), L(3), B<float>(4), B<float>(5), I(6),
                       B<unsigned char>(7), I(8), F(9), L(10), B<long long>(11), B<float>(12),
                       B<long long>(13));
        };
    else if (k == "rerank")
        call = [] {
            rerank(B<float>(0), I(1), B<float>(2), B<float>(3), B<long long>(4), I(5), I(6),
                   F(7), F(8), F(9), I(10), I(11), B<float>(12), B<long long>(13), B<int>(14));
        };
    else if (k == "rerank_f16")
        call = [] {
            rerank_f16(B<float>(0), I(1), B<unsigned short>(2), B<float>(3), B<long long>(4),
                       I(5), I(6), F(7), F(8), F(9), I(10), I(11), B<float>(12),
                       B<long long>(13), B<int>(14));
        };
    else if (k == "centroid_means")
        call = [] {
            centroid_means(B<float>(0), I(1), B<long long>(2), B<long long>(3), B<float>(4));
        };
    else if (k == "ivf_flat_scan")
        call = [] {
            ivf_flat_scan(B<float>(0), I(1), B<long long>(2), I(3), B<long long>(4),
                          B<float>(5), B<long long>(6), B<unsigned char>(7), I(8), I(9), I(10),
                          I(11), B<float>(12), B<long long>(13));
        };
    else if (k == "ivf_sq8_scan")
        call = [] {
            ivf_sq8_scan(B<float>(0), I(1), B<long long>(2), I(3), B<float>(4), B<float>(5),
                         I(6), B<long long>(7), B<unsigned char>(8), B<long long>(9),
                         B<unsigned char>(10), I(11), I(12), I(13), I(14), B<float>(15),
                         B<long long>(16));
        };
    else if (k == "ivf_pq_scan")
        call = [] {
            ivf_pq_scan(B<float>(0), I(1), B<long long>(2), I(3), B<float>(4), B<float>(5),
                        I(6), I(7), I(8), B<long long>(9), B<unsigned char>(10),
                        B<long long>(11), B<unsigned char>(12), I(13), I(14), I(15), I(16),
                        B<float>(17), B<long long>(18));
        };
    else if (k == "ivf_flat_list_major")
        call = [] {
            ivf_flat_list_major(B<float>(0), I(1), B<long long>(2), B<float>(3),
                                B<long long>(4), B<long long>(5), B<int>(6), B<long long>(7),
                                B<long long>(8), I(9), B<float>(10));
        };
    else if (k == "ivf_select_segments")
        call = [] {
            ivf_select_segments(B<float>(0), B<long long>(1), B<long long>(2), I(3),
                                B<long long>(4), B<long long>(5), B<unsigned char>(6), I(7),
                                I(8), I(9), B<float>(10), B<long long>(11));
        };
    else if (k == "ivf_flat_range")
        call = [] {
            ivf_flat_range(B<float>(0), I(1), B<long long>(2), I(3), B<long long>(4),
                           B<float>(5), B<long long>(6), B<unsigned char>(7), I(8), I(9), F(10),
                           L(11), B<long long>(12), B<float>(13), B<long long>(14));
        };
    else return false;
    return true;
}

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: driver KERNEL GRID BLOCK ARG...\n");
        return 2;
    }
    for (int a = 4; a < argc; a++) {
        std::string s = argv[a];
        Arg arg;
        if (s.rfind("b:", 0) == 0) {
            arg.path = s.substr(2);
            std::ifstream in(arg.path, std::ios::binary);
            arg.bytes.assign(std::istreambuf_iterator<char>(in), {});
            arg.bytes.resize(arg.bytes.size() + 64);  // a zero-length buffer still has an address
        } else if (s.rfind("i:", 0) == 0) {
            arg.integer = std::atoll(s.c_str() + 2);
        } else if (s.rfind("f:", 0) == 0) {
            arg.real = std::strtof(s.c_str() + 2, nullptr);
        } else {
            std::fprintf(stderr, "bad argument %s\n", s.c_str());
            return 2;
        }
        args.push_back(std::move(arg));
    }
    if (!dispatch(argv[1])) {
        std::fprintf(stderr, "unknown kernel %s\n", argv[1]);
        return 2;
    }
    emu::launch((unsigned)std::atoi(argv[2]), (unsigned)std::atoi(argv[3]),
                [](void*) { call(); }, nullptr);
    for (auto& arg : args) {
        if (arg.path.empty()) continue;
        std::ofstream out(arg.path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(arg.bytes.data()),
                  (std::streamsize)(arg.bytes.size() - 64));
    }
    return 0;
}
