/** Version of SecAI Runtime. */
export const VERSION = "0.1.0";
