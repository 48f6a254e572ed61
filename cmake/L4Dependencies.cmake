# Finds every third-party dependency once and exposes them as imported targets.

# LibTorch: from the venv's torch (scripts/setup.sh passes Torch_DIR) or the user's own.
find_package(Torch REQUIRED)
# LibTorch 2.14's headers require C++20 (2.9-2.13 accept C++17, which we keep for them).
if(Torch_VERSION VERSION_GREATER_EQUAL 2.14)
  set(CMAKE_CXX_STANDARD 20)
endif()
# TorchConfig puts its ABI flag in TORCH_CXX_FLAGS; every target must agree with it.
set(CMAKE_CXX_FLAGS "${CMAKE_CXX_FLAGS} ${TORCH_CXX_FLAGS}")

find_package(MPI REQUIRED COMPONENTS CXX)
find_package(yaml-cpp REQUIRED)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(fmt REQUIRED)
# LibTorch ships a private copy of fmt headers (a newer version, symbols not exported) in its include
# directory. Put the system fmt first through an include directory of its own so every translation
# unit compiles against the fmt we link.
get_target_property(L4_FMT_INCLUDE fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
find_path(L4_FMT_HEADER_DIR NAMES fmt/format.h HINTS ${L4_FMT_INCLUDE} NO_DEFAULT_PATH)
if(NOT L4_FMT_HEADER_DIR)
  find_path(L4_FMT_HEADER_DIR NAMES fmt/format.h REQUIRED)
endif()
set(L4_FMT_SHIM ${CMAKE_BINARY_DIR}/fmt-shim)
file(MAKE_DIRECTORY ${L4_FMT_SHIM})
file(CREATE_LINK ${L4_FMT_HEADER_DIR}/fmt ${L4_FMT_SHIM}/fmt SYMBOLIC)
find_package(nlohmann_json REQUIRED)
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)  # checkpoint CRC-32

find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)

find_path(STB_INCLUDE_DIR NAMES stb_image.h PATH_SUFFIXES stb REQUIRED)
add_library(l4_stb INTERFACE)
target_include_directories(l4_stb SYSTEM INTERFACE ${STB_INCLUDE_DIR})

add_library(l4_hdf5 INTERFACE)
target_include_directories(l4_hdf5 SYSTEM INTERFACE ${HDF5_INCLUDE_DIRS})
target_link_libraries(l4_hdf5 INTERFACE ${HDF5_C_LIBRARIES})
target_compile_definitions(l4_hdf5 INTERFACE ${HDF5_DEFINITIONS})

if(L4_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# NCCL: only meaningful with a CUDA LibTorch (or a compile-only check, see cmake/FindNCCL.cmake).
set(L4_HAVE_NCCL 0)
if(NOT L4_WITH_NCCL STREQUAL "OFF")
  find_package(NCCL QUIET)
  if(NCCL_FOUND AND (TORCH_CUDA_LIBRARIES OR L4_NCCL_COMPILE_ONLY))
    set(L4_HAVE_NCCL 1)
  elseif(L4_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "L4_WITH_NCCL=ON but NCCL or a CUDA LibTorch was not found")
  endif()
endif()
message(STATUS "llama4: NCCL communicator ${L4_HAVE_NCCL}")

# yaml-cpp's exported target name differs between Debian 12 (yaml-cpp) and 13 (yaml-cpp::yaml-cpp).
add_library(l4_yaml INTERFACE)
if(TARGET yaml-cpp::yaml-cpp)
  target_link_libraries(l4_yaml INTERFACE yaml-cpp::yaml-cpp)
else()
  target_link_libraries(l4_yaml INTERFACE yaml-cpp)
endif()
