/** Enumerates a campaign's items for planning, page by page, from a resumable cursor. */
export interface SourcePage {
  /** Items grouped by the store that holds them. */
  groups: { storeId: string; keys: string[] }[];
  /** Where the next page starts; saved in the ledger with this page's items. */
  cursor: unknown;
  done: boolean;
}

export interface Source {
  page(cursor: unknown, limit: number, signal?: AbortSignal): Promise<SourcePage>;
  /**
   * The final delta pass: items that may have appeared (or been rewritten) since `since`, in
   * pages like `page`. Sources that cannot tell return everything again.
   */
  deltaPage(since: Date, cursor: unknown, limit: number, signal?: AbortSignal): Promise<SourcePage>;
}
