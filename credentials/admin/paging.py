"""A paginator for the large lists: counts up to a cap instead of counting every row.

The admin counts the filtered rows of every list page to number its pages. At 100,000
credentials or 300,000 audit events that count reads the whole table (or the whole of a broad
filter) on every page view and cost more than the page itself. This paginator counts at most
:data:`CAP` + 1 rows (``SELECT COUNT(*) FROM (... LIMIT CAP + 1)``): below the cap the numbers
are exact; above it the page says "more than 10,000", numbers the first pages and still opens
any later page (``?p=N``), which may be empty.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet, Subquery
from django.utils.functional import cached_property

CAP = 10_000


class CappedPaginator(Paginator):
    capped = False

    @cached_property
    def count(self) -> int:
        # Only the rows, not the columns or the order of the page (annotations included).
        counted = self.object_list.order_by().values("pk")[: CAP + 1].count()
        self.capped = counted > CAP
        return counted

    def validate_number(self, number):
        if not self.count or not self.capped:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError):
            return super().validate_number(number)  # raises PageNotAnInteger
        return super().validate_number(1) if number < 1 else number

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if not self.capped and top + self.orphans >= self.count:
            top = self.count  # Paginator's own rule: the orphans join the last page
        return self._get_page(self.rows(bottom, top), number, self)

    def rows(self, bottom: int, top: int):
        """The rows of one page (still lazy)."""
        return self.object_list[bottom:top]


class DeferredJoinPaginator(CappedPaginator):
    """Picks a page's rows by their ids first, then reads just those rows ("deferred join").

    Sorting a whole table by a computed column (the credentials by failures in the last 24
    hours) or skipping far into it (page 500) makes PostgreSQL carry every row, all columns
    and the joined business, through the sort or the offset. Here the sort and the offset run
    over ids alone (``id IN (SELECT id ... ORDER BY ... LIMIT 50 OFFSET n)``, an index-only
    scan where it can be), and only the page's 50 rows are read and joined: still one query.
    """

    def rows(self, bottom: int, top: int):
        queryset = self.object_list
        if not isinstance(queryset, QuerySet) or queryset.query.distinct:
            return super().rows(bottom, top)
        ids = queryset.values("pk")[bottom:top]
        return queryset.filter(pk__in=Subquery(ids))
