/*
 * Embedded payloads (issue #6): executables and code-running pickles hidden inside another
 * format (GGUF metadata, tensor data, archive members). Byte patterns are long enough that
 * random weight data does not match them by chance.
 */
rule embedded_elf
{
  meta:
    severity = "high"
    description = "ELF executable header embedded in the file"
  strings:
    // e_ident: class 32/64, data LE/BE, version 1, OS ABI SysV/Linux, 8 zero bytes; e_type
    $elf = { 7F 45 4C 46 (01|02) (01|02) 01 (00|03) 00 00 00 00 00 00 00 00 (01|02|03|04) 00 }
  condition:
    $elf
}

rule embedded_pe
{
  meta:
    severity = "high"
    description = "Windows PE executable (DOS stub) embedded in the file"
  strings:
    $stub = "This program cannot be run in DOS mode"
  condition:
    $stub
}

rule embedded_code_pickle
{
  meta:
    severity = "critical"
    description = "Pickle that imports a code-running callable, embedded in the file"
  strings:
    $g_os = "cos\nsystem\n"
    $g_posix = "cposix\nsystem\n"
    $g_nt = "cnt\nsystem\n"
    $g_sub = /csubprocess\n(Popen|call|check_call|check_output|run|getoutput)\n/
    $g_eval = /c(__builtin__|builtins)\n(eval|exec|compile|getattr|__import__|open)\n/
    $g_runpy = "crunpy\n_run_code\n"
    $sg_os = { 8C 02 6F 73 [0-5] 8C 06 73 79 73 74 65 6D }
    $sg_posix = { 8C 05 70 6F 73 69 78 [0-5] 8C 06 73 79 73 74 65 6D }
    $sg_builtins = { 8C 08 62 75 69 6C 74 69 6E 73 [0-5] 8C 04 (65 76 61 6C | 65 78 65 63) }
    $sg_sub = { 8C 0A 73 75 62 70 72 6F 63 65 73 73 [0-5] 8C }
  condition:
    any of them
}
