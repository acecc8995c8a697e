-- Assessments, with the Zarit score of each form: the total when given, else the sum of the
-- items when every item of the form is there (22, 12, 4 or 7 items). Only the 22-item form
-- (0-88) has the published bands; short forms keep their own scale.
with source as (
    select * from raw_assessments
),

items as (
    select
        *,
        try_cast(nullif(trim(split_part(zarit_items, '|', 1)), '') as double) as item_01,
        try_cast(nullif(trim(split_part(zarit_items, '|', 2)), '') as double) as item_02,
        try_cast(nullif(trim(split_part(zarit_items, '|', 3)), '') as double) as item_03,
        try_cast(nullif(trim(split_part(zarit_items, '|', 4)), '') as double) as item_04,
        try_cast(nullif(trim(split_part(zarit_items, '|', 5)), '') as double) as item_05,
        try_cast(nullif(trim(split_part(zarit_items, '|', 6)), '') as double) as item_06,
        try_cast(nullif(trim(split_part(zarit_items, '|', 7)), '') as double) as item_07,
        try_cast(nullif(trim(split_part(zarit_items, '|', 8)), '') as double) as item_08,
        try_cast(nullif(trim(split_part(zarit_items, '|', 9)), '') as double) as item_09,
        try_cast(nullif(trim(split_part(zarit_items, '|', 10)), '') as double) as item_10,
        try_cast(nullif(trim(split_part(zarit_items, '|', 11)), '') as double) as item_11,
        try_cast(nullif(trim(split_part(zarit_items, '|', 12)), '') as double) as item_12,
        try_cast(nullif(trim(split_part(zarit_items, '|', 13)), '') as double) as item_13,
        try_cast(nullif(trim(split_part(zarit_items, '|', 14)), '') as double) as item_14,
        try_cast(nullif(trim(split_part(zarit_items, '|', 15)), '') as double) as item_15,
        try_cast(nullif(trim(split_part(zarit_items, '|', 16)), '') as double) as item_16,
        try_cast(nullif(trim(split_part(zarit_items, '|', 17)), '') as double) as item_17,
        try_cast(nullif(trim(split_part(zarit_items, '|', 18)), '') as double) as item_18,
        try_cast(nullif(trim(split_part(zarit_items, '|', 19)), '') as double) as item_19,
        try_cast(nullif(trim(split_part(zarit_items, '|', 20)), '') as double) as item_20,
        try_cast(nullif(trim(split_part(zarit_items, '|', 21)), '') as double) as item_21,
        try_cast(nullif(trim(split_part(zarit_items, '|', 22)), '') as double) as item_22
    from source
),

scored as (
    select
        *,
        case when item_01 is null then 0 else 1 end + case when item_02 is null then 0 else 1 end + case when item_03 is null then 0 else 1 end + case when item_04 is null then 0 else 1 end + case when item_05 is null then 0 else 1 end + case when item_06 is null then 0 else 1 end + case when item_07 is null then 0 else 1 end + case when item_08 is null then 0 else 1 end + case when item_09 is null then 0 else 1 end + case when item_10 is null then 0 else 1 end + case when item_11 is null then 0 else 1 end + case when item_12 is null then 0 else 1 end + case when item_13 is null then 0 else 1 end + case when item_14 is null then 0 else 1 end + case when item_15 is null then 0 else 1 end + case when item_16 is null then 0 else 1 end + case when item_17 is null then 0 else 1 end + case when item_18 is null then 0 else 1 end + case when item_19 is null then 0 else 1 end + case when item_20 is null then 0 else 1 end + case when item_21 is null then 0 else 1 end + case when item_22 is null then 0 else 1 end as items_given,
        coalesce(item_01, 0) + coalesce(item_02, 0) + coalesce(item_03, 0) + coalesce(item_04, 0) + coalesce(item_05, 0) + coalesce(item_06, 0) + coalesce(item_07, 0) + coalesce(item_08, 0) + coalesce(item_09, 0) + coalesce(item_10, 0) + coalesce(item_11, 0) + coalesce(item_12, 0) + coalesce(item_13, 0) + coalesce(item_14, 0) + coalesce(item_15, 0) + coalesce(item_16, 0) + coalesce(item_17, 0) + coalesce(item_18, 0) + coalesce(item_19, 0) + coalesce(item_20, 0) + coalesce(item_21, 0) + coalesce(item_22, 0) as items_total
    from items
)

select
    assessment_id,
    person_id,
    episode_id,
    assessment_date,
    gir,
    zarit_form,
    case
        when zarit_total is not null then zarit_total
        when zarit_form = 'zbi22' and items_given = 22 then items_total
        when zarit_form = 'zbi12' and items_given = 12 then items_total
        when zarit_form = 'zbi4' and items_given = 4 then items_total
        when zarit_form = 'mini7' and items_given = 7 then items_total
    end as zarit_score,
    carer_hours_per_week,
    carer_employment
from scored
