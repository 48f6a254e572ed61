# Test helpers. Labels: unit, parity, mpi, e2e (design section 8).

set(L4_TEST_DATA_DIR ${CMAKE_BINARY_DIR}/testdata)
file(MAKE_DIRECTORY ${L4_TEST_DATA_DIR})

if(NOT L4_PYTHON)
  find_program(L4_PYTHON NAMES python3 REQUIRED)
endif()

# Run as root, mpirun refuses to start unless told it may.
set(L4_MPIEXEC_PREFLAGS --oversubscribe --bind-to none)
execute_process(COMMAND id -u OUTPUT_VARIABLE L4_UID OUTPUT_STRIP_TRAILING_WHITESPACE)
if(L4_UID STREQUAL "0")
  list(APPEND L4_MPIEXEC_PREFLAGS --allow-run-as-root)
endif()

function(l4_test_definitions target)
  target_compile_definitions(${target} PRIVATE
    L4_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    L4_TEST_DATA_DIR="${L4_TEST_DATA_DIR}"
    L4_BINARY="${CMAKE_BINARY_DIR}/bin/llama4")
endfunction()

# l4_add_unit_test(name SOURCES ... DEPS ... [LABELS ...] [FIXTURES ...] [TIMEOUT s]): a GoogleTest binary
# whose cases are discovered one by one at test time.
function(l4_add_unit_test name)
  cmake_parse_arguments(ARG "TORCH" "TIMEOUT" "SOURCES;DEPS;LABELS;FIXTURES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  l4_common_options(${name})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  if(ARG_TORCH)
    l4_use_torch(${name})
  endif()
  l4_test_definitions(${name})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  set(props LABELS "${ARG_LABELS}")
  if(ARG_FIXTURES)
    list(APPEND props FIXTURES_REQUIRED "${ARG_FIXTURES}")
  endif()
  if(ARG_TIMEOUT)
    list(APPEND props TIMEOUT ${ARG_TIMEOUT})
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST PROPERTIES ${props})
endfunction()

# l4_add_oracle(name SCRIPT script.py [ARGS ...]): a Python oracle that writes reference data under
# testdata/<name>; tests that need it name the fixture <name>.
function(l4_add_oracle name)
  cmake_parse_arguments(ARG "" "SCRIPT" "ARGS" ${ARGN})
  add_test(NAME oracle_${name}
           COMMAND ${L4_PYTHON} ${ARG_SCRIPT} --out ${L4_TEST_DATA_DIR}/${name} ${ARG_ARGS})
  set_tests_properties(oracle_${name} PROPERTIES FIXTURES_SETUP ${name} LABELS parity TIMEOUT 600)
endfunction()

# l4_add_script_test(name COMMAND ... [LABELS ...] [FIXTURES ...]): a shell/python test script.
function(l4_add_script_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "COMMAND;LABELS;FIXTURES" ${ARGN})
  add_test(NAME ${name} COMMAND ${ARG_COMMAND})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "L4_BINARY=${CMAKE_BINARY_DIR}/bin/llama4;L4_SOURCE_DIR=${PROJECT_SOURCE_DIR};L4_TEST_DATA_DIR=${L4_TEST_DATA_DIR};L4_PYTHON=${L4_PYTHON}")
  if(ARG_FIXTURES)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${ARG_FIXTURES}")
  endif()
endfunction()

# l4_add_mpi_test(name NP n SOURCES ... DEPS ...): one ctest entry running the binary under mpirun.
function(l4_add_mpi_test name)
  cmake_parse_arguments(ARG "" "NP;TIMEOUT" "SOURCES;DEPS;FIXTURES;ARGS" ${ARGN})
  if(NOT TARGET ${name})
    add_executable(${name} ${ARG_SOURCES})
    l4_common_options(${name})
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
    target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest)
    l4_use_torch(${name})
    l4_test_definitions(${name})
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 180)
  endif()
  add_test(NAME ${name}_np${ARG_NP}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${ARG_NP} ${L4_MPIEXEC_PREFLAGS}
                   $<TARGET_FILE:${name}> ${ARG_ARGS})
  set_tests_properties(${name}_np${ARG_NP} PROPERTIES LABELS mpi TIMEOUT ${ARG_TIMEOUT} PROCESSORS ${ARG_NP}
                       ENVIRONMENT "OMP_NUM_THREADS=1")
  if(ARG_FIXTURES)
    set_tests_properties(${name}_np${ARG_NP} PROPERTIES FIXTURES_REQUIRED "${ARG_FIXTURES}")
  endif()
endfunction()
