# Project-wide target helpers: one static library per src/ folder, tests per module.

set(L4_WARNINGS -Wall -Wextra -Wno-unused-parameter)
if(L4_WERROR)
  list(APPEND L4_WARNINGS -Werror)
endif()

# The precompiled header is built once (by l4_pch) and reused by every target that uses torch.
# Reuse needs identical flags, so all targets get the same options from l4_common_options().
function(l4_common_options target)
  target_compile_options(${target} PRIVATE ${L4_WARNINGS})
  target_include_directories(${target} BEFORE PRIVATE ${L4_FMT_SHIM})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/src)
endfunction()

add_library(l4_pch STATIC ${PROJECT_SOURCE_DIR}/cmake/pch_anchor.cpp)
l4_common_options(l4_pch)
target_link_libraries(l4_pch PUBLIC ${TORCH_LIBRARIES} fmt::fmt)
if(L4_USE_PCH)
  target_precompile_headers(l4_pch PRIVATE ${PROJECT_SOURCE_DIR}/src/core/pch.h)
endif()

function(l4_use_torch target)
  target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
  if(L4_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM l4_pch)
  endif()
endfunction()

# l4_add_library(<dir> [TORCH] SOURCES ... DEPS ...): library l4_<dir>, alias l4::<dir>.
function(l4_add_library dir)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(l4_${dir} STATIC ${ARG_SOURCES})
  add_library(l4::${dir} ALIAS l4_${dir})
  l4_common_options(l4_${dir})
  target_link_libraries(l4_${dir} PUBLIC ${ARG_DEPS})
  if(ARG_TORCH)
    l4_use_torch(l4_${dir})
  endif()
endfunction()
